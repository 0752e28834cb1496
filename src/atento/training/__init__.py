"""atento.training"""
