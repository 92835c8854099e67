"""Land-cover layouts with plausible spatial structure.

A layout is generated for a scene's whole cell (see :mod:`sarvlm.synth.footprint`) at the
scene's pixel size. Structure, in metres so that it scales with the resolution:

- water: a coastline (smooth fractal curve across the cell), a meandering river, or a lake;
- land: Voronoi regions with noisy borders, each given one class by the scene kind's mix;
- farmland *and* grassland: subdivided into rotated parcel grids by one and the same generator
  (so their geometry, like their backscatter, gives no clue which is which);
- urban: a rotated street grid with buildings inside the blocks;
- airport scenes: a runway (long paved strip), a parallel taxiway and an apron, all "bare".

Classes follow :data:`CLASSES`; runways, taxiways and aprons are "bare" ground whose surface
is paved (the ``pavement`` mask).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sarvlm.synth.noise import smooth_noise

CLASSES: dict[int, str] = {0: "water", 1: "urban", 2: "farmland", 3: "grassland", 4: "forest", 5: "bare"}
WATER, URBAN, FARMLAND, GRASSLAND, FOREST, BARE = range(6)

# Scene kinds and how often they occur.
SCENE_KINDS: dict[str, float] = {"port": 0.22, "coast": 0.22, "river": 0.2, "airport": 0.16, "rural": 0.2}

# Land-class mix of the Voronoi regions per kind: urban, farmland, grassland, forest, bare.
_LAND_MIX: dict[str, tuple[float, float, float, float, float]] = {
    "port": (0.35, 0.25, 0.2, 0.1, 0.1),
    "coast": (0.1, 0.35, 0.3, 0.15, 0.1),
    "river": (0.3, 0.3, 0.25, 0.1, 0.05),
    "airport": (0.1, 0.35, 0.4, 0.1, 0.05),
    "rural": (0.05, 0.35, 0.3, 0.25, 0.05),
}


@dataclass
class Strip:
    """A straight paved strip (runway, taxiway) or apron: centre (x, y) px, heading, size in px."""

    cx: float
    cy: float
    heading: float  # radians, 0 = along +x
    length: float
    width: float

    def corners(self) -> np.ndarray:
        c, s = math.cos(self.heading), math.sin(self.heading)
        hl, hw = self.length / 2, self.width / 2
        loc = np.array([[-hl, -hw], [hl, -hw], [hl, hw], [-hl, hw]])
        return np.stack([self.cx + loc[:, 0] * c - loc[:, 1] * s, self.cy + loc[:, 0] * s + loc[:, 1] * c], axis=1)


@dataclass
class Layout:
    """Land cover of one cell plus the structure the targets and renderers need."""

    kind: str
    resolution_m: float
    classes: np.ndarray  # (H, W) uint8, keys of CLASSES
    parcels: np.ndarray  # (H, W) int32 parcel / block / patch id, 0 where none
    buildings: np.ndarray  # (H, W) int32 building id, 0 where none
    roads: np.ndarray  # (H, W) bool streets of urban blocks
    pavement: np.ndarray  # (H, W) bool runway, taxiway, apron surfaces
    runways: list[Strip] = field(default_factory=list)
    aprons: list[Strip] = field(default_factory=list)
    river_axis: tuple[float, float, float] | None = None  # (cx, cy, heading) of the river's mean course
    river_width_px: float = 0.0
    coast_heading: float | None = None  # direction from land into water, radians
    street_heading: float = 0.0  # direction of the urban street grid, radians

    def window(self, r0: int, c0: int, size: int) -> Layout:
        """The layout of a ``size``×``size`` window at (r0, c0) (geometry shifted accordingly)."""
        sl = (slice(r0, r0 + size), slice(c0, c0 + size))

        def shift(s: Strip) -> Strip:
            return Strip(s.cx - c0, s.cy - r0, s.heading, s.length, s.width)

        axis = None
        if self.river_axis is not None:
            axis = (self.river_axis[0] - c0, self.river_axis[1] - r0, self.river_axis[2])
        return Layout(
            self.kind,
            self.resolution_m,
            self.classes[sl],
            self.parcels[sl],
            self.buildings[sl],
            self.roads[sl],
            self.pavement[sl],
            [shift(s) for s in self.runways],
            [shift(s) for s in self.aprons],
            axis,
            self.river_width_px,
            self.coast_heading,
            self.street_heading,
        )

    def fractions(self) -> dict[str, float]:
        """Share of each class, in class order (classes absent from the layout included as 0)."""
        counts = np.bincount(self.classes.ravel(), minlength=len(CLASSES))
        total = max(int(counts.sum()), 1)
        return {CLASSES[i]: float(counts[i]) / total for i in range(len(CLASSES))}


def pick_kind(rng: np.random.Generator) -> str:
    names = list(SCENE_KINDS)
    p = np.array([SCENE_KINDS[k] for k in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx + 0.5, yy + 0.5


def _coast(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, res: float) -> tuple[np.ndarray, float]:
    """Water on one side of a fractal coastline; returns (water mask, heading land→water)."""
    h, w = xx.shape
    heading = float(rng.uniform(0, 2 * math.pi))
    # Signed distance along the heading from the cell centre, perturbed at two scales.
    d = (xx - w / 2) * math.cos(heading) + (yy - h / 2) * math.sin(heading)
    d = d + smooth_noise(rng, (h, w), 250.0 / res) * (40.0 / res) + smooth_noise(rng, (h, w), 60.0 / res) * (8.0 / res)
    offset = float(rng.uniform(-0.15, 0.2)) * min(h, w)
    return d > offset, heading


def _river(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, res: float
) -> tuple[np.ndarray, tuple[float, float, float], float]:
    """A meandering river band across the cell; returns (water, axis (cx, cy, heading), width px)."""
    h, w = xx.shape
    heading = float(rng.uniform(0, math.pi))
    cx = w / 2 + float(rng.uniform(-0.15, 0.15)) * w
    cy = h / 2 + float(rng.uniform(-0.15, 0.15)) * h
    c, s = math.cos(heading), math.sin(heading)
    along = (xx - cx) * c + (yy - cy) * s
    across = -(xx - cx) * s + (yy - cy) * c
    width = min(float(rng.uniform(40.0, 140.0)) / res, 0.3 * min(h, w))
    wavelength = float(rng.uniform(400.0, 900.0)) / res
    amp = float(rng.uniform(0.0, 0.25)) * wavelength
    phase = float(rng.uniform(0, 2 * math.pi))
    centre = amp * np.sin(2 * math.pi * along / wavelength + phase) + smooth_noise(rng, (h, w), 200.0 / res) * (
        10.0 / res
    )
    half = width / 2 * (1 + 0.1 * smooth_noise(rng, (h, w), 150.0 / res))
    water = np.abs(across - centre) < half
    return water, (cx, cy, heading), width


def _lake(rng: np.random.Generator, shape: tuple[int, int], res: float) -> np.ndarray:
    n = smooth_noise(rng, shape, 300.0 / res)
    return n > float(rng.uniform(1.0, 1.6))


def _regions(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, res: float, cell_m: float
) -> tuple[np.ndarray, int]:
    """Voronoi region index per pixel with noisy borders; returns (index map, region count)."""
    h, w = xx.shape
    k = int(np.clip(round((cell_m / 230.0) ** 2), 3, 14))
    sx = rng.uniform(0, w, k).astype(np.float32)
    sy = rng.uniform(0, h, k).astype(np.float32)
    warp = 30.0 / res
    wx = xx + smooth_noise(rng, (h, w), 120.0 / res) * warp
    wy = yy + smooth_noise(rng, (h, w), 120.0 / res) * warp
    # Nearest seed, one seed at a time (a (k, H, W) distance stack would not fit large cells).
    best = np.full((h, w), np.inf, dtype=np.float32)
    region = np.zeros((h, w), dtype=np.int32)
    for i in range(k):
        d2 = (wx - sx[i]) ** 2 + (wy - sy[i]) ** 2
        closer = d2 < best
        best[closer] = d2[closer]
        region[closer] = i
    return region, k


def _parcel_ids(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, res: float) -> np.ndarray:
    """Ids of a rotated grid of field parcels (farmland and grassland alike) over the whole cell."""
    ang = float(rng.uniform(0, math.pi))
    c, s = math.cos(ang), math.sin(ang)
    a = (xx * c + yy * s) / (float(rng.uniform(40.0, 110.0)) / res)
    b = (-xx * s + yy * c) / (float(rng.uniform(70.0, 220.0)) / res)
    ia = np.floor(a).astype(np.int64)
    ib = np.floor(b).astype(np.int64)
    return ((ia - ia.min()) * 1000 + (ib - ib.min()) + 1).astype(np.int32)


def _urban(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, res: float, ang: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Street grid at angle ``ang`` and buildings over the whole cell: (roads, block ids, building ids)."""
    c, s = math.cos(ang), math.sin(ang)
    pa = float(rng.uniform(60.0, 130.0)) / res  # block pitch along a
    pb = float(rng.uniform(60.0, 130.0)) / res
    street = float(rng.uniform(10.0, 22.0)) / res
    a = xx * c + yy * s
    b = -xx * s + yy * c
    fa, fb = np.mod(a, pa), np.mod(b, pb)
    roads = (fa < street) | (fb < street)
    ia, ib = np.floor(a / pa).astype(np.int64), np.floor(b / pb).astype(np.int64)
    ia -= ia.min()
    ib -= ib.min()
    blocks = (ia * 1000 + ib + 1).astype(np.int32)
    # Buildings: each block is split in two along a; each half holds one building set back from
    # the streets by random margins drawn per half-block; some lots stay open (yards, parking).
    u = np.clip((fa - street) / max(pa - street, 1e-6), 0, 1)  # 0..1 inside the block
    v = np.clip((fb - street) / max(pb - street, 1e-6), 0, 1)
    half = (u >= 0.5).astype(np.int64)
    lots = rng.random((int(ia.max()) + 1, int(ib.max()) + 1, 2, 3))
    r = lots[ia, ib, half]  # (H, W, 3)
    uu = np.where(half > 0, u - 0.5, u) * 2  # 0..1 inside the half-block
    m1 = 0.08 + 0.25 * r[..., 0]
    m2 = 0.08 + 0.25 * r[..., 1]
    inside = (uu > m1) & (uu < 1 - m1 * 0.7) & (v > m2) & (v < 1 - m2 * 0.6) & ~roads
    empty = r[..., 2] < 0.12
    buildings = np.where(inside & ~empty, blocks * 2 + half.astype(np.int32), 0).astype(np.int32)
    return roads, blocks, buildings


def _airport(rng: np.random.Generator, h: int, w: int, res: float) -> tuple[Strip, Strip, Strip]:
    """A runway through the cell, a parallel taxiway and an apron beside it."""
    heading = float(rng.uniform(0, math.pi))
    cx = w / 2 + float(rng.uniform(-0.1, 0.1)) * w
    cy = h / 2 + float(rng.uniform(-0.1, 0.1)) * h
    length = 3.0 * max(h, w)  # runways are longer than any scene
    runway = Strip(cx, cy, heading, length, float(rng.uniform(30.0, 60.0)) / res)
    side = 1.0 if rng.random() < 0.5 else -1.0
    nx, ny = -math.sin(heading) * side, math.cos(heading) * side  # unit normal towards the apron
    tx_off = float(rng.uniform(90.0, 140.0)) / res
    taxi = Strip(cx + nx * tx_off, cy + ny * tx_off, heading, length, float(rng.uniform(18.0, 25.0)) / res)
    apron_depth = float(rng.uniform(90.0, 160.0)) / res
    ap_off = tx_off + taxi.width / 2 + apron_depth / 2 + 2.0 / res
    apron_len = float(rng.uniform(0.5, 0.9)) * max(h, w)
    shift = float(rng.uniform(-0.2, 0.2)) * max(h, w)
    apron = Strip(
        cx + nx * ap_off + math.cos(heading) * shift,
        cy + ny * ap_off + math.sin(heading) * shift,
        heading,
        apron_len,
        apron_depth,
    )
    return runway, taxi, apron


def _strip_mask(strip: Strip, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    c, s = math.cos(strip.heading), math.sin(strip.heading)
    a = (xx - strip.cx) * c + (yy - strip.cy) * s
    b = -(xx - strip.cx) * s + (yy - strip.cy) * c
    return (np.abs(a) <= strip.length / 2) & (np.abs(b) <= strip.width / 2)


def generate_layout(rng: np.random.Generator, cell_px: int, resolution_m: float, kind: str | None = None) -> Layout:
    """Generate the land cover of a ``cell_px``×``cell_px`` cell at ``resolution_m`` metres per pixel."""
    kind = kind or pick_kind(rng)
    if kind not in SCENE_KINDS:
        raise ValueError(f"unknown scene kind {kind!r} (expected one of {', '.join(SCENE_KINDS)})")
    res = float(resolution_m)
    h = w = int(cell_px)
    cell_m = cell_px * res
    xx, yy = _grid(h, w)

    water = np.zeros((h, w), dtype=bool)
    coast_heading = None
    river_axis, river_width = None, 0.0
    if kind in ("port", "coast"):
        water, coast_heading = _coast(rng, xx, yy, res)
    elif kind == "river":
        water, river_axis, river_width = _river(rng, xx, yy, res)
    elif kind == "rural" and rng.random() < 0.5:
        water = _lake(rng, (h, w), res)

    region, k = _regions(rng, xx, yy, res, cell_m)
    mix = np.array(_LAND_MIX[kind])
    region_class = np.array([URBAN, FARMLAND, GRASSLAND, FOREST, BARE])[rng.choice(5, size=k, p=mix / mix.sum())]
    if kind == "port":
        # The waterfront of a port is built up: regions touching the water become urban.
        from scipy import ndimage

        near_water = ndimage.binary_dilation(water, iterations=max(1, int(40.0 / res)))
        touching = np.unique(region[near_water & ~water])
        region_class[touching] = URBAN
    classes = region_class[region].astype(np.uint8)

    parcels = np.where(np.isin(classes, (FARMLAND, GRASSLAND)), _parcel_ids(rng, xx, yy, res), 0).astype(np.int32)
    is_urban = classes == URBAN
    street_heading = float(rng.uniform(0, math.pi / 2))
    if is_urban.any():
        roads, blocks, bldg = _urban(rng, xx, yy, res, street_heading)
        roads &= is_urban
        buildings = np.where(is_urban, bldg, 0).astype(np.int32)
        parcels = np.where(is_urban, blocks, parcels).astype(np.int32)
    else:
        roads = np.zeros((h, w), dtype=bool)
        buildings = np.zeros((h, w), dtype=np.int32)
    # Forest and bare patches get ids from the Voronoi regions so their renderings vary per patch.
    parcels = np.where(np.isin(classes, (FOREST, BARE)), region + 1, parcels).astype(np.int32)

    pavement = np.zeros((h, w), dtype=bool)
    runways: list[Strip] = []
    aprons: list[Strip] = []
    if kind == "airport":
        runway, taxi, apron = _airport(rng, h, w, res)
        runways = [runway]
        aprons = [apron]
        paved = _strip_mask(runway, xx, yy) | _strip_mask(taxi, xx, yy) | _strip_mask(apron, xx, yy)
        # The airfield around the pavement is mown grass; pavement is bare ground.
        grass = _strip_mask(
            Strip(runway.cx, runway.cy, runway.heading, runway.length, runway.width + 2 * 160.0 / res), xx, yy
        )
        grass |= _strip_mask(
            Strip(apron.cx, apron.cy, apron.heading, apron.length + 60.0 / res, apron.width + 60.0 / res), xx, yy
        )
        classes[grass & ~paved] = GRASSLAND
        parcels[grass & ~paved] = 1
        classes[paved] = BARE
        pavement = paved
        roads &= ~grass
        buildings[grass] = 0

    classes[water] = WATER
    parcels[water] = 0
    buildings[water] = 0
    roads &= ~water
    pavement &= ~water
    return Layout(
        kind=kind,
        resolution_m=res,
        classes=classes,
        parcels=parcels,
        buildings=buildings,
        roads=roads,
        pavement=pavement,
        runways=runways,
        aprons=aprons,
        river_axis=river_axis,
        river_width_px=river_width,
        coast_heading=coast_heading,
        street_heading=street_heading,
    )


CROPS: tuple[str, ...] = ("wheat", "maize", "rice", "fallow")


def parcel_crops(parcels: np.ndarray, key: int, year: int) -> np.ndarray:
    """Crop index (into :data:`CROPS`) of each parcel id in a given year.

    A fixed hash of (parcel id, world key, year): crops rotate between years, and the optical
    rendering and the embedding field of a year agree on what grows where.
    """
    ids = parcels.astype(np.uint64)
    h = ids * np.uint64(2654435761) + np.uint64(key % (1 << 31)) * np.uint64(40503) + np.uint64(year) * np.uint64(7919)
    h ^= h >> np.uint64(13)
    h *= np.uint64(0x5BD1E995)
    h ^= h >> np.uint64(15)
    return (h % np.uint64(len(CROPS))).astype(np.int8)
