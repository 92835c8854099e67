"""Placing targets in a scene: where each kind may go, how many, and their exact pixel boxes.

Placement rules (documented in docs/synthetic-world.md):

- ships: entirely on water with a one-pixel water margin; in ports some are moored alongside
  the piers, the rest anchored at random headings;
- aircraft: on aprons (parked in a row, facing the taxiway) or on the taxiway;
- oil tanks: tank farms (2–6 tanks in a grid) on bare or urban ground, in ports and airports;
- bridges: across the river, perpendicular to its course, with both ends on land;
- harbor: 1–3 piers from the waterfront into the water (port scenes); the box spans the piers;
- cars: on streets (aligned with the street grid) and aprons;
- land clutter: ship-shaped bright structures (long metal sheds, barges in dry dock) on fields,
  meadows and bare ground at least 30 m from water — *not annotated*; recorded in
  ``meta["clutter"]``. They mimic ships in SAR; only knowing where the water is separates them.

Objects never overlap (a 2-pixel gap is kept) and lie fully inside the scene. A type is skipped
when it would be under 2 pixels long at the scene's resolution or longer than 80% of the scene.
The box of an object is the extent of the pixels its parts paint (pixel edges, x2/y2 exclusive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from sarvlm.synth.landcover import BARE, FARMLAND, GRASSLAND, URBAN, WATER, Layout
from sarvlm.synth.shapes import mask_box, place, polygon_mask
from sarvlm.synth.target_shapes import BUILDERS, Shape, bridge, pier

# (min, max) count of each target kind per scene kind.
COUNTS: dict[str, dict[str, tuple[int, int]]] = {
    "port": {"harbor": (1, 1), "ship": (2, 8), "oil_tank": (0, 6), "car": (0, 10), "clutter": (0, 3)},
    "coast": {"ship": (1, 6), "car": (0, 4), "clutter": (1, 3)},
    "river": {"bridge": (1, 2), "ship": (0, 3), "car": (2, 10), "clutter": (0, 3)},
    "airport": {"aircraft": (2, 8), "car": (0, 6), "oil_tank": (0, 4), "clutter": (0, 2)},
    "rural": {"car": (0, 3), "clutter": (0, 3), "oil_tank": (0, 2)},
}
# Fine-type frequencies.
FINE_P = {
    "ship": {"cargo": 0.3, "tanker": 0.2, "fishing": 0.3, "warship": 0.2},
    "aircraft": {"airliner": 0.35, "transport": 0.25, "fighter": 0.25, "light": 0.15},
    "oil_tank": {"floating_roof": 0.5, "fixed_roof": 0.5},
    "car": {"sedan": 0.6, "truck": 0.3, "bus": 0.1},
}
CLUTTER_LOOKS_LIKE = ("cargo", "fishing", "warship")
MOVING_P = 0.5  # share of ships at sea (not moored) that are under way and leave a wake
SLANT_RANGE_OVER_VELOCITY_S = 110.0  # R / V of a C-band satellite (~850 km / 7.6 km/s)
KELVIN_HALF_ANGLE = math.radians(19.47)  # the Kelvin wake's arms, for any speed in deep water
_SHED_RGB = ((196, 198, 204), (168, 172, 180))


@dataclass
class PlacedTarget:
    """A target in scene pixels: its painted polygons and points, coverage, box and outline."""

    category: str
    fine: str | None
    parts: list[tuple[np.ndarray, float, tuple[int, int, int], bool]]  # (poly xy px, σ0 dB, rgb, in_box)
    points: list[tuple[float, float, float]]  # (x, y, σ0 dB)
    mask: np.ndarray  # (H, W) bool, pixels of the physical object
    bbox: list[float]
    outline: list[float]  # oriented rectangle x1, y1, ..., x4, y4 in pixels
    annotated: bool = True
    members: list[PlacedTarget] = field(default_factory=list)  # piers of a harbor
    # (poly xy px, "turbulent"|"kelvin") behind the ship as an optical camera sees it; SAR images
    # the wake shifted by ``wake_offset_px`` relative to the (azimuth-displaced) ship.
    wake: list[tuple[np.ndarray, str]] = field(default_factory=list)
    speed_ms: float = 0.0  # ground speed of a moving ship
    wake_offset_px: tuple[float, float] = (0.0, 0.0)  # where the wake (true position) is, relative to the image

    @property
    def heading(self) -> float:
        """Direction of the object's axis (radians, image x → y), from its outline."""
        x0, y0, x1, y1 = self.outline[:4]
        return math.atan2(y1 - y0, x1 - x0)

    @property
    def centre(self) -> tuple[float, float]:
        return float(np.mean(self.outline[0::2])), float(np.mean(self.outline[1::2]))


def _place_shape(
    shape: Shape, center: tuple[float, float], heading: float, res: float, size: int
) -> PlacedTarget | None:
    parts = []
    cover = np.zeros((size, size), dtype=bool)
    for p in shape.parts:
        xy = place(p.poly, center, heading, res)
        parts.append((xy, p.sigma0_db, p.rgb, p.in_box))
        if p.in_box:
            sub, (r0, c0) = polygon_mask(xy, size, size)
            if sub.size:
                cover[r0 : r0 + sub.shape[0], c0 : c0 + sub.shape[1]] |= sub
    box = mask_box(cover)
    if box is None:
        return None
    pts = (
        [
            (float(x), float(y), db)
            for (x, y), (_, _, db) in zip(
                place(np.array([[u, v] for u, v, _ in shape.points]).reshape(-1, 2), center, heading, res),
                shape.points,
                strict=True,
            )
        ]
        if shape.points
        else []
    )
    hl, hw = shape.length / 2, shape.width / 2
    corners = place(np.array([[-hl, -hw], [hl, -hw], [hl, hw], [-hl, hw]]), center, heading, res)
    outline = [round(float(v), 2) for v in corners.ravel()]
    return PlacedTarget(shape.category, shape.fine, parts, pts, cover, box, outline)


class _Placer:
    """Rejection sampling of targets against allowed-ground masks and an occupancy mask."""

    def __init__(self, layout: Layout, rng: np.random.Generator):
        self.layout = layout
        self.rng = rng
        self.size = layout.classes.shape[0]
        self.res = layout.resolution_m
        self.occupied = np.zeros_like(layout.classes, dtype=bool)
        self.targets: list[PlacedTarget] = []

    def fits(self, t: PlacedTarget, allowed: np.ndarray, margin_px: int = 1) -> bool:
        x1, y1, x2, y2 = t.bbox
        if x1 < 1 or y1 < 1 or x2 > self.size - 1 or y2 > self.size - 1:
            return False
        # Work on the box grown by 3 px: dilations of the full scene would dominate the run time.
        r0, c0 = max(int(y1) - 3, 0), max(int(x1) - 3, 0)
        win = (slice(r0, int(y2) + 3), slice(c0, int(x2) + 3))
        m = t.mask[win]
        grown = ndimage.binary_dilation(m, iterations=margin_px) if margin_px else m
        if not allowed[win][grown].all():
            return False
        return not self.occupied[win][ndimage.binary_dilation(m, iterations=2)].any()

    def accept(self, t: PlacedTarget) -> None:
        self.occupied |= t.mask
        self.targets.append(t)

    def size_ok(self, shape: Shape) -> bool:
        return shape.length / self.res >= 2.0 and shape.length / self.res <= 0.8 * self.size

    def pick_fine(self, category: str) -> str:
        p = FINE_P[category]
        names = list(p)
        w = np.array([p[n] for n in names])
        return names[int(self.rng.choice(len(names), p=w / w.sum()))]

    def try_place(
        self,
        shape: Shape,
        candidates: np.ndarray,
        allowed: np.ndarray,
        heading: float | None = None,
        attempts: int = 25,
        margin_px: int = 1,
    ) -> PlacedTarget | None:
        """Drop ``shape`` at random candidate pixels until it fits (or give up)."""
        if not self.size_ok(shape) or len(candidates) == 0:
            return None
        for _ in range(attempts):
            r, c = candidates[int(self.rng.integers(len(candidates)))]
            hd = float(self.rng.uniform(0, 2 * math.pi)) if heading is None else heading
            # Cheap rejections before rasterising: both ends of the axis inside and allowed.
            ex, ey = math.cos(hd) * 0.45 * shape.length / self.res, math.sin(hd) * 0.45 * shape.length / self.res
            ends = ((c + 0.5 + ex, r + 0.5 + ey), (c + 0.5 - ex, r + 0.5 - ey))
            if any(
                not (1 <= x < self.size - 1 and 1 <= y < self.size - 1) or not allowed[int(y), int(x)] for x, y in ends
            ):
                continue
            t = _place_shape(shape, (c + 0.5, r + 0.5), hd, self.res, self.size)
            if t is not None and self.fits(t, allowed, margin_px):
                self.accept(t)
                return t
        return None


def _cands(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask)


def place_targets(layout: Layout, rng: np.random.Generator) -> list[PlacedTarget]:
    """Place the targets of one scene (``layout`` is the scene window). Mutates the layout's
    classes under harbour piers (they are built-up land)."""
    pl = _Placer(layout, rng)
    cls = layout.classes
    # Counts are per 512 m × 512 m of scene (the default scene); larger scenes hold more, up to 8×.
    scale = min(8.0, max(1.0, (layout.classes.shape[0] * layout.resolution_m / 512.0) ** 2))
    # Bridges go with the river's length (√area), the harbor stays one.
    per_kind = {"harbor": 1.0, "bridge": math.sqrt(scale)}
    counts = {
        k: int(rng.integers(round(lo * per_kind.get(k, scale)), round(hi * per_kind.get(k, scale)) + 1))
        for k, (lo, hi) in COUNTS[layout.kind].items()
    }
    water = cls == WATER
    land = ~water
    res = layout.resolution_m

    if counts.get("harbor"):
        _place_harbor(pl, layout, water)
    if counts.get("bridge"):
        for _ in range(counts["bridge"]):
            _place_bridge(pl, layout, water)

    # Ships: some moored alongside piers in ports, the rest at anchor.
    n_ships = counts.get("ship", 0)
    harbor = next((t for t in pl.targets if t.category == "harbor"), None)
    if harbor is not None and n_ships:
        for p in harbor.members:
            if n_ships <= 0:
                break
            if _moor_ship(pl, layout, p, water):
                n_ships -= 1
    water_px = _cands(water)
    for _ in range(n_ships):
        fine = pl.pick_fine("ship")
        if layout.kind == "river" and fine != "fishing" and rng.random() < 0.7:
            fine = "fishing"
        shape = BUILDERS["ship"](fine, rng)
        t = pl.try_place(shape, water_px, water)
        if t is not None and rng.random() < MOVING_P:
            # A target with a range velocity v_r is imaged displaced in azimuth by (R/V)·v_r: the
            # ship appears beside its own wake. Range grows with x (sensor in the west), azimuth is y.
            t.speed_ms = round(float(rng.uniform(2.0, 8.0)), 2)
            v_range = t.speed_ms * math.cos(t.heading)
            t.wake_offset_px = (0.0, round(SLANT_RANGE_OVER_VELOCITY_S * v_range / res, 2))
            t.wake = _wake(t, shape.length, shape.width, float(rng.uniform(2.0, 5.0)), res)

    if counts.get("aircraft"):
        _place_aircraft(pl, layout, counts["aircraft"])

    if counts.get("oil_tank"):
        ground = ((cls == BARE) | (cls == URBAN)) & ~layout.buildings.astype(bool) & ~layout.pavement & ~layout.roads
        if layout.kind == "rural":
            ground = (cls == BARE) | (cls == GRASSLAND)
        _place_tank_farm(pl, layout, counts["oil_tank"], ground)

    if counts.get("car"):
        roads = layout.roads | layout.pavement
        road_px = _cands(roads)
        for _ in range(counts["car"]):
            fine = pl.pick_fine("car")
            heading = (
                layout.street_heading + (math.pi / 2) * int(rng.integers(4)) if not layout.pavement.any() else None
            )
            pl.try_place(BUILDERS["car"](fine, rng), road_px, roads, heading=heading, margin_px=0)

    if counts.get("clutter"):
        far = ~ndimage.binary_dilation(water, iterations=max(1, int(round(30.0 / res))))
        ground = np.isin(cls, (FARMLAND, GRASSLAND, BARE)) & ~layout.pavement & far & land
        ground_px = _cands(ground)
        for _ in range(counts["clutter"]):
            fine = CLUTTER_LOOKS_LIKE[int(rng.integers(len(CLUTTER_LOOKS_LIKE)))]
            t = pl.try_place(BUILDERS["ship"](fine, rng), ground_px, ground)
            if t is not None:
                t.annotated = False
                t.category, t.fine = "clutter", fine
                # In optical it is what it is: metal roofs, not a hull with containers.
                t.parts = [(xy, db, _SHED_RGB[k % 2], inb) for k, (xy, db, _rgb, inb) in enumerate(t.parts)]
    return pl.targets


def _wake(
    t: PlacedTarget, length_m: float, beam_m: float, wake_lengths: float, res: float
) -> list[tuple[np.ndarray, str]]:
    """Wake polygons of a moving ship: the turbulent (centre-line) wake and the two Kelvin arms.

    The turbulent wake trails ``wake_lengths`` ship lengths behind the stern, widening from the
    beam to twice the beam; the Kelvin arms leave the stern at ±19.47° for 1.5 ship lengths.
    """
    tail = wake_lengths * length_m
    turbulent = np.array(
        [
            [-length_m / 2, -beam_m / 2],
            [-length_m / 2 - tail, -beam_m],
            [-length_m / 2 - tail, beam_m],
            [-length_m / 2, beam_m / 2],
        ]
    )
    parts = [(place(turbulent, t.centre, t.heading, res), "turbulent")]
    arm_w = max(2.0, 1.5 * res)
    arm_len = 1.5 * length_m
    for sign in (-1.0, 1.0):
        a = math.pi - sign * KELVIN_HALF_ANGLE  # pointing backwards, opened by ±19.47°
        du, dv = math.cos(a) * arm_len, math.sin(a) * arm_len
        nu, nv = -math.sin(a) * arm_w / 2, math.cos(a) * arm_w / 2
        u0 = -length_m / 2
        arm = np.array([[u0 - nu, -nv], [u0 + du - nu, dv - nv], [u0 + du + nu, dv + nv], [u0 + nu, nv]])
        parts.append((place(arm, t.centre, t.heading, res), "kelvin"))
    return parts


def _place_harbor(pl: _Placer, layout: Layout, water: np.ndarray) -> None:
    """Piers from the waterfront into the water, perpendicular to the coast."""
    if layout.coast_heading is None:
        return
    rng, res, size = pl.rng, pl.res, pl.size
    heading = layout.coast_heading
    shore = water & ndimage.binary_dilation(~water, iterations=1)
    cands = _cands(shore)
    inner = cands[
        (cands[:, 0] > size * 0.15)
        & (cands[:, 0] < size * 0.85)
        & (cands[:, 1] > size * 0.15)
        & (cands[:, 1] < size * 0.85)
    ]
    if len(inner) == 0:
        return
    n_piers = int(rng.integers(1, 4))
    plen = float(rng.uniform(80, 200))
    plen = min(plen, 0.35 * size * res)
    pwid = float(rng.uniform(20, 40))
    spacing = float(rng.uniform(80, 150))
    allowed = np.ones_like(water)  # piers start on land and run into the water
    for _ in range(20):
        r, c = inner[int(rng.integers(len(inner)))]
        members = []
        ok = True
        for k in range(n_piers):
            off = (k - (n_piers - 1) / 2) * spacing / res
            # Along the coast is perpendicular to the heading into the water.
            sx, sy = -math.sin(heading) * off, math.cos(heading) * off
            # Centre the pier so that 20 m of it sits on land.
            along = (plen / 2 - 20.0) / res
            cx = c + 0.5 + sx + math.cos(heading) * along
            cy = r + 0.5 + sy + math.sin(heading) * along
            t = _place_shape(pier(plen, pwid), (cx, cy), heading, res, size)
            if t is None or not pl.fits(t, allowed, margin_px=0):
                ok = False
                break
            # A pier must mostly stand over water.
            if water[t.mask].mean() < 0.6:
                ok = False
                break
            members.append(t)
        if ok and members:
            cover = np.zeros_like(water)
            for m in members:
                cover |= m.mask
            parts = [p for m in members for p in m.parts]
            harbor = PlacedTarget(
                "harbor", None, parts, [], cover, mask_box(cover), members[0].outline, members=members
            )
            pl.accept(harbor)
            # Piers are built-up land in the land-cover map (and so in the embedding field).
            layout.classes[cover] = URBAN
            return


def _moor_ship(pl: _Placer, layout: Layout, p: PlacedTarget, water: np.ndarray) -> bool:
    """A ship alongside a pier, parallel to it."""
    rng, res = pl.rng, pl.res
    fine = "cargo" if rng.random() < 0.5 else pl.pick_fine("ship")
    shape = BUILDERS["ship"](fine, rng)
    heading = layout.coast_heading + (0.0 if rng.random() < 0.5 else math.pi)
    xs, ys = np.array(p.outline[0::2]), np.array(p.outline[1::2])
    cx, cy = xs.mean(), ys.mean()
    pier_w = math.hypot(xs[1] - xs[2], ys[1] - ys[2]) * res
    for side in (1.0, -1.0):
        off = (pier_w / 2 + shape.width / 2 + 4.0) / res * side
        nx, ny = -math.sin(layout.coast_heading), math.cos(layout.coast_heading)
        t = _place_shape(shape, (cx + nx * off, cy + ny * off), heading, res, pl.size)
        if t is not None and pl.size_ok(shape) and pl.fits(t, water, margin_px=1):
            pl.accept(t)
            return True
    return False


def _place_bridge(pl: _Placer, layout: Layout, water: np.ndarray) -> None:
    if layout.river_axis is None:
        return
    rng, res, size = pl.rng, pl.res, pl.size
    cx0, cy0, heading = layout.river_axis
    across = heading + math.pi / 2
    for _ in range(20):
        t_along = float(rng.uniform(-0.4, 0.4)) * size
        # Walk across the river through this point; the bridge spans the water run nearest the
        # river axis plus 20 m of abutment on each bank.
        px, py = cx0 + math.cos(heading) * t_along, cy0 + math.sin(heading) * t_along
        ks = np.arange(-size, size)
        xs = np.floor(px + math.cos(across) * ks).astype(int)
        ys = np.floor(py + math.sin(across) * ks).astype(int)
        ok = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
        on = np.zeros_like(ok)
        on[ok] = water[ys[ok], xs[ok]]
        if not on.any():
            continue
        labels, _ = ndimage.label(on)
        centre_run = labels[np.argmin(np.where(on, np.abs(ks), np.inf))]
        run = ks[labels == centre_run]
        span = (run[-1] - run[0] + 1) * res + 40.0
        mid = (run[0] + run[-1] + 1) / 2
        shape = bridge(span, rng)
        t = _place_shape(shape, (px + math.cos(across) * mid, py + math.sin(across) * mid), across, res, size)
        if t is None or not pl.size_ok(shape):
            continue
        # Both ends on land, the middle over water.
        xs_, ys_ = np.array(t.outline[0::2]), np.array(t.outline[1::2])
        ends = [((xs_[0] + xs_[3]) / 2, (ys_[0] + ys_[3]) / 2), ((xs_[1] + xs_[2]) / 2, (ys_[1] + ys_[2]) / 2)]
        if any(not (0 <= int(y) < size and 0 <= int(x) < size) or water[int(y), int(x)] for x, y in ends):
            continue
        if pl.fits(t, np.ones_like(water), margin_px=0) and water[t.mask].mean() > 0.3:
            pl.accept(t)
            return


def _place_aircraft(pl: _Placer, layout: Layout, n: int) -> None:
    rng = pl.rng
    pave = layout.pavement
    pave_px = _cands(pave)
    for _ in range(n):
        fine = pl.pick_fine("aircraft")
        shape = BUILDERS["aircraft"](fine, rng)
        heading = None
        if layout.aprons and rng.random() < 0.8:
            # Parked on the apron, nose towards the taxiway (perpendicular to the runway).
            ap = layout.aprons[0]
            heading = ap.heading + (math.pi / 2 if rng.random() < 0.5 else -math.pi / 2)
        pl.try_place(shape, pave_px, pave, heading=heading, margin_px=0)


def _place_tank_farm(pl: _Placer, layout: Layout, n: int, ground: np.ndarray) -> None:
    """A grid of tanks of one type and size with 0.5–1 diameter gaps."""
    rng, res = pl.rng, pl.res
    cands = _cands(ground)
    if len(cands) == 0:
        return
    fine = pl.pick_fine("oil_tank")
    template = BUILDERS["oil_tank"](fine, rng)
    d = template.length
    pitch = d * float(rng.uniform(1.5, 2.0)) / res
    cols = int(math.ceil(math.sqrt(n)))
    for _ in range(10):
        r0, c0 = cands[int(rng.integers(len(cands)))]
        placed = 0
        for i in range(n):
            rr, cc = r0 + (i // cols) * pitch, c0 + (i % cols) * pitch
            # Tanks of a farm share type and size: place the same shape at each grid node.
            t = _place_shape(template, (cc + 0.5, rr + 0.5), 0.0, res, pl.size)
            if t is not None and pl.size_ok(template) and pl.fits(t, ground, margin_px=0):
                pl.accept(t)
                placed += 1
        if placed:
            return
