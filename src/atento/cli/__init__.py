"""atento.cli"""
