"""atento.search"""
