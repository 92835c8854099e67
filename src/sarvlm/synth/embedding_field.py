"""An AlphaEarth-like embedding field: 64-d unit vectors on the 10 m UTM grid, one per year.

AlphaEarth Foundations summarises a year of optical, radar and other observations of each
10 m pixel into a 64-d unit vector; similar surfaces get similar vectors. The synthetic field
follows the same idea from the land-cover layout of each scene cell:

    e(p, year) = normalise( Σ_c f_c(p) · P_c                    land-cover mixture in the pixel
                            + 0.45 · f_farmland(p) · K_crop(p, year)   the parcel's crop that year
                            + 0.12 · G(p)                        smooth geographic variation
                            + 0.04 · Y_year                      a small global drift per year
                            + 0.03 · n(p, year) )                per-pixel noise

- ``P_c``: one prototype per land-cover class, mutually orthonormal (fixed for every world, as
  the real model is fixed). Water and land, and farmland and grassland, are therefore far
  apart (cosine ≈ 0) even where their radar backscatter is identical;
- ``f_c(p)``: the share of class c among 4×4 sub-samples of the 10 m pixel (mixed pixels at
  borders blend prototypes, as real embeddings do); pixels off every cell of the site are
  NoData;
- ``K_crop``: crop vectors (orthogonal to the class prototypes) for the parcel's crop in that
  year (:func:`sarvlm.synth.landcover.parcel_crops`): farmland changes between years, the rest
  barely does;
- ``G``: 4 smooth random fields (≈300 m features) on fixed directions.

Transient targets (ships, aircraft, cars) are not in the field — an annual composite does not
see them; permanent structures (piers) are, through the land cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sarvlm.synth.footprint import AEF_PIXEL_M, Site
from sarvlm.synth.landcover import CLASSES, CROPS, FARMLAND, Layout, parcel_crops
from sarvlm.synth.noise import smooth_noise

AEF_DIM = 64
_BASIS_SEED = 0xAEF64  # fixed: every world shares the same "model"
_N_GEO = 4
_SUBSAMPLES = 4


def _basis() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class prototypes (C, 64), crop vectors (K, 64), geographic directions (G, 64)); orthonormal."""
    n = len(CLASSES) + len(CROPS) + _N_GEO
    q, _ = np.linalg.qr(np.random.default_rng(_BASIS_SEED).standard_normal((AEF_DIM, n)))
    vecs = q.T.astype(np.float64)
    c, k = len(CLASSES), len(CROPS)
    return vecs[:c], vecs[c : c + k], vecs[c + k :]


PROTOTYPES, CROP_VECTORS, GEO_DIRECTIONS = _basis()


def _year_vector(year: int) -> np.ndarray:
    v = np.random.default_rng([_BASIS_SEED, int(year)]).standard_normal(AEF_DIM)
    return v / np.linalg.norm(v)


@dataclass
class CellLayout:
    """One scene cell of a site: where it sits (row, col), its land cover, its crop-hash key."""

    row: int
    col: int
    layout: Layout
    key: int


def site_embedding_fields(
    site: Site, cells: Sequence[CellLayout], years: Sequence[int], site_seed: Sequence[int]
) -> dict[int, np.ndarray]:
    """Year → (64, H, W) float32 unit vectors over a site's tile (``site.aef_shape``); NaN off the cells.

    ``site_seed`` seeds the geographic variation (shared by all years) and, with the year, the
    per-pixel noise. The year-independent part (land-cover shares, geography) is computed once.
    """
    h, w = site.aef_shape
    S = _SUBSAMPLES
    n_cls = len(CLASSES)
    frac = np.zeros((h, w, n_cls), dtype=np.float32)
    covered = np.zeros((h, w), dtype=bool)
    parcels = np.zeros((h, w), dtype=np.int64)  # parcel at each 10 m pixel's central sub-sample
    xs = (np.arange(w * S) + 0.5) / S * AEF_PIXEL_M  # sub-sample centres, metres east of the site corner
    chunk = max(1, 2_000_000 // (w * S * S))  # AEF rows per chunk: bounds the sub-sample grid's memory
    for r0 in range(0, h, chunk):
        r1 = min(h, r0 + chunk)
        ys = (np.arange(r0 * S, r1 * S) + 0.5) / S * AEF_PIXEL_M  # metres south of the site corner
        cls = np.full((ys.size, xs.size), 255, dtype=np.uint8)  # 255: outside every cell
        for c in cells:
            res = c.layout.resolution_m
            n = c.layout.classes.shape[0]
            ri = np.floor((ys - c.row * site.cell_m) / res).astype(np.int64)
            ci = np.floor((xs - c.col * site.cell_m) / res).astype(np.int64)
            rsel, csel = np.flatnonzero((ri >= 0) & (ri < n)), np.flatnonzero((ci >= 0) & (ci < n))
            if rsel.size == 0 or csel.size == 0:
                continue
            cls[np.ix_(rsel, csel)] = c.layout.classes[np.ix_(ri[rsel], ci[csel])]
            # Parcel ids made unique per cell so that crops of different cells are independent.
            rc = rsel[rsel % S == S // 2]
            cc = csel[csel % S == S // 2]
            if rc.size and cc.size:
                parcels[np.ix_(r0 + rc // S, cc // S)] = (
                    c.layout.parcels[np.ix_(ri[rc], ci[cc])].astype(np.int64) + (c.key % 100_003) * 10_000_019
                )
        # Class shares per 10 m pixel: one bincount over (pixel, class) pairs of the sub-samples.
        hh = r1 - r0
        pix = (np.arange(hh * S)[:, None] // S) * w + (np.arange(w * S)[None, :] // S)
        code = np.minimum(cls, n_cls).astype(np.int64)
        counts = np.bincount((pix * (n_cls + 1) + code).ravel(), minlength=hh * w * (n_cls + 1)).reshape(
            hh, w, n_cls + 1
        )
        frac[r0:r1] = counts[..., :-1] / float(S * S)
        covered[r0:r1] = counts[..., -1] < S * S
    geo_rng = np.random.default_rng(list(site_seed) + [1])
    geo = np.stack([smooth_noise(geo_rng, (h, w), 300.0 / AEF_PIXEL_M) for _ in range(_N_GEO)], axis=-1)
    base = frac @ PROTOTYPES.astype(np.float32) + np.float32(0.12) * (geo @ GEO_DIRECTIONS.astype(np.float32))
    farm = np.float32(0.45) * frac[..., FARMLAND : FARMLAND + 1]

    fields = {}
    for year in years:
        vec = base + farm * CROP_VECTORS.astype(np.float32)[parcel_crops(parcels, 0, year)]
        vec += np.float32(0.04) * _year_vector(year).astype(np.float32)
        vec += np.float32(0.03) * np.random.default_rng(list(site_seed) + [2, int(year)]).standard_normal(
            vec.shape, dtype=np.float32
        )
        vec /= np.sqrt(np.einsum("hwc,hwc->hw", vec, vec))[..., None]
        vec[~covered] = np.nan
        fields[int(year)] = np.ascontiguousarray(vec.transpose(2, 0, 1))
    return fields


def site_embedding_field(site: Site, cells: Sequence[CellLayout], year: int, site_seed: Sequence[int]) -> np.ndarray:
    """The field of one year (see :func:`site_embedding_fields`)."""
    return site_embedding_fields(site, cells, [year], site_seed)[int(year)]


def crop_in_cell(layout: Layout, key: int, year: int) -> np.ndarray:
    """Crop index per pixel of a cell (or scene window) layout, as the embedding field sees it."""
    return parcel_crops(layout.parcels.astype(np.int64) + (key % 100_003) * 10_000_019, 0, year)


def nearest_class(vectors: np.ndarray) -> np.ndarray:
    """Land-cover class whose prototype is closest (max cosine) to each vector of ``(..., 64)``.

    What an ideal linear probe on the field recovers; used by the tests and the docs to show
    that the field separates classes SAR cannot.
    """
    return np.argmax(np.asarray(vectors, dtype=np.float64) @ PROTOTYPES.T, axis=-1)
