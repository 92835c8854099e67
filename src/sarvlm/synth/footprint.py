"""Where each synthetic scene lies on Earth: north-up UTM footprints in cells, cells in sites.

Every scene owns a square *cell* in its local UTM zone: the scene footprint plus a margin on
each side. The land cover is generated for the whole cell and the SAR scene is its central
window. The margin keeps anchor-grid nodes placed on the scene's WGS84 bounding box (slightly
larger than the rotated UTM square) over valid embedding pixels.

Cells are grouped edge to edge into *sites* of up to ``SITE_CELLS``×``SITE_CELLS`` cells, like
neighbouring patches cut from one large SAR acquisition; one embedding tile per site and year
covers all its cells on the 10 m grid (the site corner is aligned to that grid). Sites never
overlap, so tiles never overlap either, as in the official product.

The default region straddles the 120°E meridian near Qingdao (China), the border between UTM
zones 50N and 51N; sites alternate between the two zones, so any world of two or more scenes
exercises multi-zone prior lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import GeoRef

AEF_PIXEL_M = 10.0  # AlphaEarth ground sampling distance

# lon_min, lat_min, lon_max, lat_max; split at 120°E into UTM zones 50 and 51.
DEFAULT_REGION = (119.0, 35.6, 121.0, 36.8)
SITE_CELLS = 3  # a site holds up to 3×3 scene cells


def utm_zone(lon: float) -> int:
    """UTM zone number (1..60) of a longitude (no Norway/Svalbard exceptions needed here)."""
    return int(math.floor((lon + 180.0) / 6.0)) % 60 + 1


def utm_epsg(zone: int, north: bool) -> int:
    """EPSG code of WGS84 / UTM ``zone`` in the northern (326xx) or southern (327xx) hemisphere."""
    return (32600 if north else 32700) + zone


@lru_cache(maxsize=32)
def _transformer(epsg: int, inverse: bool):
    from pyproj import Transformer

    if inverse:
        return Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)


@dataclass(frozen=True)
class SceneFootprint:
    """A scene of ``size`` × ``size`` pixels at ``resolution_m`` inside a cell of its UTM zone.

    ``cell_west``/``cell_north`` is the cell's top-left corner in UTM metres; the scene starts
    ``offset_px`` scene pixels right of and below it.
    """

    zone: int
    north: bool
    cell_west: float
    cell_north: float
    cell_px: int  # cell side in scene pixels
    offset_px: int  # scene's offset inside the cell, in scene pixels
    size: int  # scene side in pixels
    resolution_m: float
    site: int = 0  # index of the site holding the cell
    slot: tuple[int, int] = (0, 0)  # (row, col) of the cell in its site

    @property
    def epsg(self) -> int:
        return utm_epsg(self.zone, self.north)

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def zone_label(self) -> str:
        """The AlphaEarth folder name of the zone, e.g. ``50N``."""
        return f"{self.zone}{'N' if self.north else 'S'}"

    @property
    def cell_m(self) -> float:
        return self.cell_px * self.resolution_m

    @property
    def scene_west(self) -> float:
        return self.cell_west + self.offset_px * self.resolution_m

    @property
    def scene_north(self) -> float:
        return self.cell_north - self.offset_px * self.resolution_m

    def transform(self) -> list[float]:
        """rasterio Affine coefficients (a, b, c, d, e, f) of the scene, north-up."""
        r = self.resolution_m
        return [r, 0.0, self.scene_west, 0.0, -r, self.scene_north]

    def bbox_wgs84(self) -> list[float]:
        """lon_min, lat_min, lon_max, lat_max of the scene, from its densified outline."""
        r, s = self.resolution_m, self.size
        t = np.linspace(0.0, s * r, 17)
        west, north = self.scene_west, self.scene_north
        xs = np.concatenate([west + t, west + t, np.full_like(t, west), np.full_like(t, west + s * r)])
        ys = np.concatenate([np.full_like(t, north), np.full_like(t, north - s * r), north - t, north - t])
        lon, lat = _transformer(self.epsg, True).transform(xs, ys)
        # Rounded outwards to 1e-8 degrees (~1 mm) so the box always holds the scene.
        return [
            math.floor(float(np.min(lon)) * 1e8) / 1e8,
            math.floor(float(np.min(lat)) * 1e8) / 1e8,
            math.ceil(float(np.max(lon)) * 1e8) / 1e8,
            math.ceil(float(np.max(lat)) * 1e8) / 1e8,
        ]

    def center_lonlat(self) -> tuple[float, float]:
        half = self.size * self.resolution_m / 2
        lon, lat = _transformer(self.epsg, True).transform(self.scene_west + half, self.scene_north - half)
        return float(lon), float(lat)

    def georef(self) -> GeoRef:
        """The record's georeference: UTM CRS + affine transform, and the WGS84 bounding box."""
        return GeoRef(crs=self.crs, transform=self.transform(), bbox_wgs84=self.bbox_wgs84())


@dataclass(frozen=True)
class Site:
    """``rows``×``cols`` cells edge to edge from the 10 m-aligned corner (``west``, ``north``)."""

    index: int
    zone: int
    north_hemisphere: bool
    west: float
    north: float
    rows: int
    cols: int
    cell_m: float

    @property
    def epsg(self) -> int:
        return utm_epsg(self.zone, self.north_hemisphere)

    @property
    def zone_label(self) -> str:
        return f"{self.zone}{'N' if self.north_hemisphere else 'S'}"

    @property
    def aef_shape(self) -> tuple[int, int]:
        """(height, width) of the site's embedding tile in 10 m pixels (covers every cell)."""
        return (
            int(math.ceil(self.rows * self.cell_m / AEF_PIXEL_M - 1e-9)),
            int(math.ceil(self.cols * self.cell_m / AEF_PIXEL_M - 1e-9)),
        )

    def aef_transform(self) -> list[float]:
        """Affine coefficients of the site's 10 m embedding tile."""
        return [AEF_PIXEL_M, 0.0, self.west, 0.0, -AEF_PIXEL_M, self.north]


def cell_geometry(size: int, resolution_m: float) -> tuple[int, int]:
    """(cell_px, offset_px) for a scene: margin of 5% of the extent + 20 m, in whole pixels.

    The WGS84 box of a UTM square exceeds it by at most extent × sin(grid convergence) (≈ 3% at
    the zone edge at 36°N); 20 m more keep box-corner anchor nodes two 10 m pixels inside.
    """
    margin_m = 0.05 * size * resolution_m + 20.0
    offset_px = int(math.ceil(margin_m / resolution_m))
    return size + 2 * offset_px, offset_px


def place_scenes(
    n: int,
    size: int,
    resolution_m: float,
    rng: np.random.Generator,
    region: tuple[float, float, float, float] = DEFAULT_REGION,
    site_cells: int = SITE_CELLS,
) -> tuple[list[Site], list[SceneFootprint]]:
    """Place ``n`` scenes in non-overlapping sites inside ``region`` (WGS84 lon/lat box).

    There are ``max(min(n, 2), ceil(n / site_cells²))`` sites; scene i goes to site
    ``i % n_sites``, filling its cells row by row. Sites alternate between the region's western
    and eastern halves, which straddle a UTM zone border in the default region.
    """
    lon_min, lat_min, lon_max, lat_max = region
    if not (lon_min < lon_max and lat_min < lat_max):
        raise SarvlmError(f"region {region}: expected lon_min < lon_max and lat_min < lat_max")
    cell_px, offset_px = cell_geometry(size, resolution_m)
    cell_m = cell_px * resolution_m
    n_sites = max(min(n, 2), int(math.ceil(n / site_cells**2)))
    per_site = [len(range(s, n, n_sites)) for s in range(n_sites)]
    lon_mid = (lon_min + lon_max) / 2
    border = math.floor((lon_mid + 180) / 6) * 6 - 180  # zone border at or west of the middle
    if lon_min < border < lon_max:
        lon_mid = float(border)
    halves = [(lon_min, lon_mid), (lon_mid, lon_max)]
    site_m = site_cells * cell_m
    min_sep_deg = 1.5 * site_m / 111_000.0  # > site diagonal, in degrees of latitude
    sites: list[Site] = []
    centers: list[tuple[float, float]] = []
    for s_idx in range(n_sites):
        lo, hi = halves[s_idx % 2]
        for _attempt in range(2000):
            lon = float(rng.uniform(lo, hi))
            lat = float(rng.uniform(lat_min, lat_max))
            coslat = math.cos(math.radians(lat))
            if all(math.hypot((lon - cl) * coslat, lat - ca) > min_sep_deg for cl, ca in centers):
                break
        else:
            raise SarvlmError(f"region {region}: too small for {n} scenes in sites of {site_m:.0f} m")
        north = lat >= 0
        zone = utm_zone(lon)
        x, y = _transformer(utm_epsg(zone, north), False).transform(lon, lat)
        k = per_site[s_idx]
        rows, cols = int(math.ceil(k / site_cells)), min(k, site_cells)
        west = math.floor((x - cols * cell_m / 2) / AEF_PIXEL_M) * AEF_PIXEL_M
        top = math.ceil((y + rows * cell_m / 2) / AEF_PIXEL_M) * AEF_PIXEL_M
        sites.append(Site(s_idx, zone, north, float(west), float(top), rows, cols, cell_m))
        centers.append((lon, lat))
    footprints = []
    for i in range(n):
        site = sites[i % n_sites]
        row, col = divmod(i // n_sites, site_cells)
        footprints.append(
            SceneFootprint(
                zone=site.zone,
                north=site.north_hemisphere,
                cell_west=round(site.west + col * cell_m, 6),
                cell_north=round(site.north - row * cell_m, 6),
                cell_px=cell_px,
                offset_px=offset_px,
                size=size,
                resolution_m=resolution_m,
                site=site.index,
                slot=(row, col),
            )
        )
    return sites, footprints
