"""atento.analysis"""
