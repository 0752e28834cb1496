"""atento.models"""
