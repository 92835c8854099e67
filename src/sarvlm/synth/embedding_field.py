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
  borders blend prototypes, as real embeddings do);
- ``K_crop``: crop vectors (orthogonal to the class prototypes) for the parcel's crop in that
  year (:func:`sarvlm.synth.landcover.parcel_crops`): farmland changes between years, the rest
  barely does;
- ``G``: 4 smooth random fields (≈300 m features) on fixed directions.

Transient targets (ships, aircraft, cars) are not in the field — an annual composite does not
see them; permanent structures (piers) are, through the land cover.
"""

from __future__ import annotations

import numpy as np

from sarvlm.synth.footprint import AEF_PIXEL_M, SceneFootprint
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
    return vecs[:c], vecs[c:c + k], vecs[c + k:]


PROTOTYPES, CROP_VECTORS, GEO_DIRECTIONS = _basis()


def _year_vector(year: int) -> np.ndarray:
    v = np.random.default_rng([_BASIS_SEED, int(year)]).standard_normal(AEF_DIM)
    return v / np.linalg.norm(v)


def embedding_field(layout: Layout, footprint: SceneFootprint, year: int, world_key: int,
                    scene_rng_seed: list[int]) -> np.ndarray:
    """(64, n, n) float32 unit vectors over the scene's cell, ``n = footprint.aef_px``.

    ``layout`` is the whole cell's layout; ``scene_rng_seed`` seeds the scene's geographic
    variation (shared by all years) and, with the year, the per-pixel noise.
    """
    n = footprint.aef_px
    cell = layout.classes.shape[0]
    ratio = AEF_PIXEL_M / layout.resolution_m  # cell pixels per AEF pixel
    sub = (np.arange(n * _SUBSAMPLES) + 0.5) / _SUBSAMPLES * ratio  # sub-sample positions, cell px
    idx = np.clip(np.floor(sub).astype(np.int64), 0, cell - 1)
    cls = layout.classes[np.ix_(idx, idx)]  # (n*S, n*S)
    onehot = np.eye(len(CLASSES), dtype=np.float64)[cls]  # (nS, nS, C)
    frac = onehot.reshape(n, _SUBSAMPLES, n, _SUBSAMPLES, -1).mean(axis=(1, 3))  # (n, n, C)

    vec = frac @ PROTOTYPES  # (n, n, 64)

    centre = np.clip(np.floor((np.arange(n) + 0.5) * ratio).astype(np.int64), 0, cell - 1)
    parcels = layout.parcels[np.ix_(centre, centre)]
    crops = parcel_crops(parcels, world_key, year)
    vec += 0.45 * frac[..., FARMLAND:FARMLAND + 1] * CROP_VECTORS[crops]

    geo_rng = np.random.default_rng(scene_rng_seed + [1])
    geo = np.stack([smooth_noise(geo_rng, (n, n), 300.0 / AEF_PIXEL_M) for _ in range(_N_GEO)], axis=-1)
    vec += 0.12 * geo.astype(np.float64) @ GEO_DIRECTIONS
    vec += 0.04 * _year_vector(year)
    vec += 0.03 * np.random.default_rng(scene_rng_seed + [2, int(year)]).standard_normal(vec.shape)
    vec /= np.linalg.norm(vec, axis=-1, keepdims=True)
    return np.ascontiguousarray(vec.transpose(2, 0, 1)).astype(np.float32)


def nearest_class(vectors: np.ndarray) -> np.ndarray:
    """Land-cover class whose prototype is closest (max cosine) to each vector of ``(..., 64)``.

    What an ideal linear probe on the field recovers; used by the tests and the docs to show
    that the field separates classes SAR cannot.
    """
    return np.argmax(np.asarray(vectors, dtype=np.float64) @ PROTOTYPES.T, axis=-1)
