"""Raster and file I/O: GeoTIFF/PNG/JPEG reading and writing, georeferencing, atomic writes."""
