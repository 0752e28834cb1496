"""atento.data"""
