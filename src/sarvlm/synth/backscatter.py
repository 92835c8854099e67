"""Radar backscatter of a layout: σ0 per class, texture, point scatterers and speckle.

The model is C-band VV at moderate incidence, the sensor looking from the west (range grows
with the column index):

- water: σ0 set by the scene's sea state (wind): calm −24…−19 dB, moderate −18…−14 dB, rough
  −13…−10 dB, modulated by swell. Rough water is as bright as fields and meadows — the case in
  which SAR alone cannot tell water from land but the embedding field can;
- farmland and grassland: one model for both — per-parcel σ0 ~ N(−11 dB, 1.8 dB), texture ν = 12
  — so no intensity statistic separates them;
- forest: −7.5 dB with crown-scale modulation, texture ν = 5 (volume scattering);
- urban: roofs −6 ± 3 dB per building, a double-bounce line (+8 dB) along each building's
  sensor-facing (west) wall, radar shadow east of buildings, streets −18 dB, open lots −12 dB,
  strongly textured (ν = 1.5);
- bare ground −14 ± 1.5 dB per patch; pavement (runways, taxiways, aprons) −22 dB, with bright
  edge lights every 60 m along runways.

Intensity = (σ0 · τ + NESZ) · s, with texture τ ~ Gamma(ν, 1/ν) and speckle s ~ Gamma(L, 1/L)
for L looks (fully developed speckle, multiplicative, unit mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sarvlm.synth.landcover import BARE, FARMLAND, FOREST, GRASSLAND, URBAN, WATER, Layout
from sarvlm.synth.noise import smooth_noise

NESZ_DB = -25.0  # noise-equivalent sigma zero


@dataclass(frozen=True)
class SeaState:
    name: str
    sigma0_db: tuple[float, float]  # range of the mean sea σ0
    swell_db: float  # amplitude of the swell modulation
    texture_nu: float


SEA_STATES: dict[str, SeaState] = {
    "calm": SeaState("calm", (-24.0, -19.0), 0.3, 25.0),
    "moderate": SeaState("moderate", (-18.0, -14.0), 0.7, 12.0),
    "rough": SeaState("rough", (-13.0, -10.0), 1.2, 8.0),
}
SEA_STATE_P = {"calm": 0.35, "moderate": 0.3, "rough": 0.35}

# Wake contrast relative to the surrounding sea, dB: (turbulent wake, Kelvin arms). Wind
# waves wash wakes out: visible in calm water, faint in a moderate sea, gone in a rough one.
WAKE_CONTRAST_DB = {"calm": (-6.0, 4.0), "moderate": (-3.0, 2.0), "rough": (0.0, 0.0)}

FIELD_SIGMA0_DB = (-11.0, 1.8)  # mean, std over parcels — farmland and grassland alike
FIELD_NU = 12.0


def db_to_linear(db: np.ndarray | float) -> np.ndarray | float:
    return np.power(10.0, np.asarray(db) / 10.0) if isinstance(db, np.ndarray) else 10.0 ** (db / 10.0)


RIVER_STATE_P = {"calm": 0.8, "moderate": 0.2, "rough": 0.0}  # rivers are sheltered from the wind


def pick_sea_state(rng: np.random.Generator, kind: str = "coast") -> SeaState:
    """Sea state of a scene: open water any state, rivers mostly calm."""
    table = RIVER_STATE_P if kind == "river" else SEA_STATE_P
    names = list(table)
    p = np.array([table[n] for n in names])
    return SEA_STATES[names[int(rng.choice(len(names), p=p / p.sum()))]]


def _per_id(ids: np.ndarray, values_for: callable) -> np.ndarray:
    """Map each distinct id to one random value: ``values_for(n)`` draws n values in id order."""
    uniq, inv = np.unique(ids, return_inverse=True)
    return values_for(len(uniq))[inv].reshape(ids.shape)


def _shift_east(mask: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(mask)
    if k < mask.shape[1]:
        out[:, k:] = mask[:, :-k] if k else mask
    return out


def sigma0_map(layout: Layout, rng: np.random.Generator, sea: SeaState) -> tuple[np.ndarray, np.ndarray]:
    """σ0 (linear, float32) and texture parameter ν per pixel for a layout (before targets and speckle)."""
    cls = layout.classes
    h, w = cls.shape
    res = layout.resolution_m
    db = np.full((h, w), -15.0, dtype=np.float32)
    nu = np.full((h, w), 10.0, dtype=np.float32)

    water = cls == WATER
    if water.any():
        sea_db = float(rng.uniform(*sea.sigma0_db))
        wl = float(rng.uniform(100.0, 250.0)) / res
        ang = float(rng.uniform(0, math.pi))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        swell = np.sin(2 * math.pi * (xx * math.cos(ang) + yy * math.sin(ang)) / wl + float(rng.uniform(0, 6.3)))
        wind = smooth_noise(rng, (h, w), 300.0 / res)
        db[water] = (sea_db + sea.swell_db * swell + 0.8 * wind)[water]
        nu[water] = sea.texture_nu

    fields = (cls == FARMLAND) | (cls == GRASSLAND)
    if fields.any():
        mu, sd = FIELD_SIGMA0_DB
        pdb = _per_id(layout.parcels[fields], lambda n: rng.normal(mu, sd, n))
        db[fields] = pdb
        nu[fields] = FIELD_NU

    forest = cls == FOREST
    if forest.any():
        crowns = smooth_noise(rng, (h, w), max(8.0 / res, 1.0))
        db[forest] = (-7.5 + 0.8 * crowns)[forest]
        nu[forest] = 5.0

    bare = cls == BARE
    if bare.any():
        db[bare] = _per_id(layout.parcels[bare], lambda n: rng.normal(-14.0, 1.5, n))
        nu[bare] = 15.0
    pave = layout.pavement
    if pave.any():
        db[pave] = -22.0
        nu[pave] = 30.0

    urban = cls == URBAN
    if urban.any():
        db[urban] = -12.0
        nu[urban] = 1.5
        db[layout.roads] = -18.0
        bl = layout.buildings > 0
        if bl.any():
            db[bl] = _per_id(layout.buildings[bl], lambda n: rng.normal(-6.0, 3.0, n))
            # Radar shadow east of each building (wall height ~ 8–25 m, look angle ~ 35°).
            k = max(1, int(round(float(rng.uniform(8.0, 25.0)) * math.tan(math.radians(35.0)) / res)))
            shadow = np.zeros_like(bl)
            for i in range(1, min(k, 20) + 1):
                shadow |= _shift_east(bl, i)
            shadow &= urban & ~bl
            db[shadow] = -30.0
            # Double bounce where a building's west wall meets the ground.
            wall = bl & ~_shift_east(bl, 1)
            db[wall] = 8.0
    sigma = db_to_linear(db.astype(np.float64)).astype(np.float32)
    for runway in layout.runways:
        _edge_lights(sigma, runway, res)
    return sigma, nu


def _edge_lights(sigma: np.ndarray, runway, res: float) -> None:
    """Bright edge lights every 60 m along both edges of a runway (+5 dB corner-like points)."""
    h, w = sigma.shape
    c, s = math.cos(runway.heading), math.sin(runway.heading)
    n = int(runway.length / (60.0 / res))
    for side in (-1, 1):
        ox, oy = -s * side * runway.width / 2, c * side * runway.width / 2
        for i in range(n):
            t = (i - n / 2) * 60.0 / res
            x, y = runway.cx + c * t + ox, runway.cy + s * t + oy
            col, row = int(x), int(y)
            if 0 <= row < h and 0 <= col < w:
                sigma[row, col] = max(sigma[row, col], db_to_linear(5.0))


def modulate(sigma: np.ndarray, poly_xy: np.ndarray, db: float, where: np.ndarray) -> None:
    """Multiply σ0 by ``10^(db/10)`` on the polygon's pixels where ``where`` holds (wakes on water)."""
    from sarvlm.synth.shapes import polygon_mask

    if db == 0.0:
        return
    sub, (r0, c0) = polygon_mask(poly_xy, *sigma.shape)
    if sub.size:
        win = (slice(r0, r0 + sub.shape[0]), slice(c0, c0 + sub.shape[1]))
        sel = sub & where[win]
        sigma[win][sel] *= np.float32(db_to_linear(db))


def add_point_scatterers(sigma: np.ndarray, points: list[tuple[float, float, float]]) -> None:
    """Add strong point scatterers ``(x, y, σ0 dB)`` with the SAR impulse response's sidelobe cross.

    An unweighted SAR impulse response is sinc² in range and azimuth: the first sidelobes sit
    −13.3 dB below the peak. Visible crosses around very bright points are typical of ships.
    """
    h, w = sigma.shape
    k = np.arange(-6, 7)
    # Sampled half-way between the sinc zeros: 0.045 (-13.5 dB), 0.016, 0.008, ...
    side = np.where(k == 0, 0.0, np.sinc(k + 0.5 * np.sign(k)) ** 2)
    for x, y, pdb in points:
        col, row = int(x), int(y)
        if not (0 <= row < h and 0 <= col < w):
            continue
        peak = db_to_linear(pdb)
        sigma[row, col] = max(sigma[row, col], peak)
        for off, g in zip(k, side, strict=True):
            if off == 0:
                continue
            if 0 <= col + off < w:
                sigma[row, col + off] += peak * g
            if 0 <= row + off < h:
                sigma[row + off, col] += peak * g


def texture(nu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit-mean texture τ ~ Gamma(ν, 1/ν) per pixel (ν per pixel; large ν = homogeneous)."""
    # Drawn per distinct ν (a handful of classes): scalar-shape Gamma draws are far faster than
    # one draw with a per-pixel shape array.
    tau = np.empty(nu.shape, dtype=np.float32)
    for v in np.unique(nu):
        sel = nu == v
        tau[sel] = rng.standard_gamma(float(v), size=int(sel.sum()), dtype=np.float32) / np.float32(v)
    return tau


def speckle(
    sigma: np.ndarray,
    nu: np.ndarray,
    looks: float,
    rng: np.random.Generator,
    nesz_db: float = NESZ_DB,
    tau: np.ndarray | None = None,
) -> np.ndarray:
    """Intensity image: ``(σ0 · τ + NESZ) · s`` with τ ~ Gamma(ν, 1/ν), s ~ Gamma(L, 1/L).

    Pass ``tau`` to reuse one texture realisation across polarisations (texture is the
    scene's structure; speckle is independent per channel).
    """
    if tau is None:
        tau = texture(nu, rng)
    s = rng.standard_gamma(float(looks), size=sigma.shape, dtype=np.float32) / np.float32(looks)
    return ((sigma * tau + np.float32(db_to_linear(nesz_db))) * s).astype(np.float32)


# Cross-polarised (VH) minus co-polarised (VV) backscatter, dB. Volume scattering (forest)
# depolarises most, surfaces and double bounce least. Farmland and grassland share one value,
# so VH does not separate them either.
VH_MINUS_VV_DB = {WATER: -9.0, URBAN: -8.0, FARMLAND: -7.0, GRASSLAND: -7.0, FOREST: -5.5, BARE: -9.0}
VH_MINUS_VV_PAVEMENT_DB = -8.0
VH_MINUS_VV_DOUBLE_BOUNCE_DB = -15.0
VH_MINUS_VV_TARGET_DB = -6.0  # ship superstructures, aircraft, tanks: multiple bounces depolarise


def cross_pol_offset_db(layout: Layout) -> np.ndarray:
    """Per-pixel VH − VV offset in dB for a layout (targets are applied by the caller)."""
    lut = np.array([VH_MINUS_VV_DB[k] for k in sorted(VH_MINUS_VV_DB)], dtype=np.float32)
    off = lut[layout.classes]
    off[layout.pavement] = VH_MINUS_VV_PAVEMENT_DB
    bl = layout.buildings > 0
    if bl.any():
        off[bl & ~_shift_east(bl, 1)] = VH_MINUS_VV_DOUBLE_BOUNCE_DB
    return off
