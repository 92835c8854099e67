"""Tiny AEF tile sets with known int8 codes for the priors tests.

Two UTM zones meet at lon 6° (31N west of it, 32N east). At lat ≈ 45°:
- 2020/31N/a: top-down tile west of (and across) the zone edge, with a NoData patch;
- 2020/32N/b: bottom-up tile east of the edge;
- 2022/31N/a: the same area as 2020/31N/a for the nearest-year tests (different codes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pyproj import Transformer
from rasterio.transform import Affine

from sarvlm.io.aef_layout import AEF_NODATA, write_aef_index, write_aef_tile

BBOX = (5.98, 45.00, 6.02, 45.02)  # a footprint straddling the zone edge
NODATA_LONLAT = (5.99, 45.01)  # a node that falls in the NoData patch
PIX = 10.0
SIZE = 400


def _origin(epsg: int, lon: float, lat: float) -> tuple[float, float]:
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    return float(np.floor(x / PIX) * PIX), float(np.ceil(y / PIX) * PIX)


def codes(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-127, 128, size=(64, SIZE, SIZE), dtype=np.int8)


def build_tiles(root: Path, index: str = "parquet") -> dict[str, Path]:
    """Write the tile set and its index; returns tile paths by name."""
    out = {}
    x0, y0 = _origin(32631, 5.965, 45.03)
    tr_a = Affine(PIX, 0.0, x0, 0.0, -PIX, y0)
    a = codes(1)
    # NoData patch (all bands) around NODATA_LONLAT.
    nx, ny = Transformer.from_crs(4326, 32631, always_xy=True).transform(*NODATA_LONLAT)
    c, r = int((nx - x0) // PIX), int((y0 - ny) // PIX)
    a[:, r - 2 : r + 3, c - 2 : c + 3] = AEF_NODATA
    out["a2020"] = write_aef_tile(root, 2020, 31, "N", "a", a, tr_a)
    x0b, y0b = _origin(32632, 5.995, 45.03)
    out["b2020"] = write_aef_tile(
        root, 2020, 32, "N", "b", codes(2), Affine(PIX, 0.0, x0b, 0.0, -PIX, y0b), bottom_up=True
    )
    out["a2022"] = write_aef_tile(root, 2022, 31, "N", "a", codes(3), tr_a)
    csv, pq = write_aef_index(root)
    if index == "csv":
        pq.unlink()
    return out


def expected_codes(tile: Path, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Oracle: rasterio's own point sampling of the tile (GDAL inverts the geotransform)."""
    import rasterio

    with rasterio.open(tile) as src:
        x, y = Transformer.from_crs(4326, src.crs.to_epsg(), always_xy=True).transform(lon, lat)
        return np.array([v for v in src.sample(list(zip(x, y)))], dtype=np.int8)
