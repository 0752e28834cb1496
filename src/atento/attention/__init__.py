"""atento.attention"""
