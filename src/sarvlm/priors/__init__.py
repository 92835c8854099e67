"""Geospatial priors: AlphaEarth embeddings sampled on spatiotemporal anchor grids (FUSAR-GPT §3.1)."""
