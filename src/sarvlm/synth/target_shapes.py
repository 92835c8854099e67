"""What each target type looks like: parts (polygons in metres) with σ0 and colour, bright points.

Local frame: ``u`` along the object's axis (bow / nose at +u), ``v`` across it, metres. Sizes
follow real vessels, aircraft, tanks and vehicles; each fine type has its own proportions and
scattering layout so that fine types are distinguishable at 1–3 m resolution:

=========  ================  ==============================================================
category   fine type         shape (length L in m)
=========  ================  ==============================================================
ship       cargo             L 100–190, beam 0.15 L; bright container rows, stern superstructure
ship       tanker            L 150–250, beam 0.18 L; darker flat deck, bright centre pipeline
ship       fishing           L 15–35, beam 0.28 L; bright all over, one mast point
ship       warship           L 90–160, beam 0.12 L; slender, bright mid-ship superstructure
aircraft   airliner          L 35–70, span ≈ L, swept wings (28°), engine points under wings
aircraft   transport         L 25–45, span 1.15–1.3 L, straight high wing, wide fuselage
aircraft   fighter           L 14–20, delta wing, span 0.6–0.7 L
aircraft   light             L 7–12, straight wing, span 1.2–1.4 L
oil_tank   floating_roof     diameter 20–70; bright rim, dark floating roof
oil_tank   fixed_roof        diameter 15–50; medium dome, bright sensor-facing arc, apex point
car        sedan/truck/bus   4.5×1.8, 9–12×2.5, 12×2.55
bridge     —                 deck across a river, width 10–28, multipath ghost line beside it
harbor     —                 1–3 piers 80–200 m long, 20–40 m wide, bright edges
=========  ================  ==============================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sarvlm.synth.shapes import ellipse, rect

SHIP_TYPES = ("cargo", "tanker", "fishing", "warship")
AIRCRAFT_TYPES = ("airliner", "transport", "fighter", "light")
TANK_TYPES = ("floating_roof", "fixed_roof")
CAR_TYPES = ("sedan", "truck", "bus")

RGB = tuple[int, int, int]


@dataclass
class Part:
    """One polygon of an object in the local frame, painted in order (later parts on top)."""

    poly: np.ndarray  # (n, 2) (u, v) metres
    sigma0_db: float
    rgb: RGB
    in_box: bool = True  # False for SAR artefacts (multipath ghosts) outside the physical object


@dataclass
class Shape:
    """An object type instance before placement: parts, bright points (u, v, dB), size."""

    category: str
    fine: str | None
    length: float  # metres along u
    width: float  # metres along v
    parts: list[Part] = field(default_factory=list)
    points: list[tuple[float, float, float]] = field(default_factory=list)


def _hull(length: float, beam: float, bow: float) -> np.ndarray:
    """Ship hull: parallel body with a pointed bow at +u and a square stern."""
    hl, hb = length / 2, beam / 2
    return np.array([[-hl, -hb], [hl - bow, -hb], [hl, 0.0], [hl - bow, hb], [-hl, hb]])


def ship(fine: str, rng: np.random.Generator) -> Shape:
    if fine == "cargo":
        L = float(rng.uniform(100, 190))
        B = L * float(rng.uniform(0.14, 0.16))
        s = Shape("ship", fine, L, B, [Part(_hull(L, B, 0.15 * L), 2.0, (120, 45, 40))])
        n = max(2, int(0.6 * L / 14))
        u0, u1 = -0.3 * L, 0.3 * L
        for i in range(n):
            a = u0 + (u1 - u0) * i / n
            b = a + (u1 - u0) / n * 0.8
            colour = [(40, 90, 160), (180, 60, 40), (200, 160, 50), (60, 130, 80)][i % 4]
            s.parts.append(Part(rect(a, b, -0.42 * B, 0.42 * B), 9.0, colour))
        s.parts.append(Part(rect(-0.46 * L, -0.37 * L, -0.4 * B, 0.4 * B), 14.0, (235, 235, 230)))
        s.points += [(-0.42 * L, -0.2 * B, 24.0), (-0.4 * L, 0.2 * B, 22.0)]
        return s
    if fine == "tanker":
        L = float(rng.uniform(150, 250))
        B = L * float(rng.uniform(0.17, 0.19))
        s = Shape(
            "ship",
            fine,
            L,
            B,
            [
                Part(_hull(L, B, 0.12 * L), -1.0, (60, 40, 35)),
                Part(rect(-0.38 * L, 0.4 * L, -0.44 * B, 0.44 * B), -2.0, (150, 60, 50)),
            ],
        )
        s.parts.append(Part(rect(-0.35 * L, 0.38 * L, -0.04 * B, 0.04 * B), 10.0, (200, 200, 190)))
        s.parts.append(Part(rect(-0.02 * L, 0.02 * L, -0.4 * B, 0.4 * B), 10.0, (200, 200, 190)))
        s.parts.append(Part(rect(-0.47 * L, -0.4 * L, -0.4 * B, 0.4 * B), 14.0, (235, 235, 230)))
        s.points += [(-0.44 * L, 0.0, 24.0), (0.0, 0.0, 20.0)]
        return s
    if fine == "fishing":
        L = float(rng.uniform(15, 35))
        B = L * float(rng.uniform(0.26, 0.3))
        s = Shape(
            "ship",
            fine,
            L,
            B,
            [
                Part(_hull(L, B, 0.25 * L), 7.0, (40, 80, 160)),
                Part(rect(-0.2 * L, 0.1 * L, -0.3 * B, 0.3 * B), 10.0, (235, 235, 235)),
            ],
        )
        s.points += [(0.0, 0.0, 18.0)]
        return s
    if fine == "warship":
        L = float(rng.uniform(90, 160))
        B = L * float(rng.uniform(0.11, 0.13))
        s = Shape(
            "ship",
            fine,
            L,
            B,
            [
                Part(_hull(L, B, 0.22 * L), 3.0, (120, 125, 130)),
                Part(rect(-0.1 * L, 0.15 * L, -0.35 * B, 0.35 * B), 15.0, (150, 155, 160)),
            ],
        )
        s.parts.append(Part(rect(-0.48 * L, -0.3 * L, -0.45 * B, 0.45 * B), -8.0, (90, 95, 100)))  # flat helideck
        s.points += [(0.05 * L, 0.0, 24.0), (0.32 * L, 0.0, 20.0), (-0.05 * L, 0.0, 21.0)]
        return s
    raise ValueError(f"unknown ship type {fine!r}")


def _wing(
    u_root: float,
    chord_root: float,
    chord_tip: float,
    half_body: float,
    half_span: float,
    sweep_deg: float,
    sign: float,
) -> np.ndarray:
    """One wing (sign +1 right, -1 left): leading edge swept back by ``sweep_deg``."""
    back = (half_span - half_body) * math.tan(math.radians(sweep_deg))
    le_root = u_root + chord_root / 2
    le_tip = le_root - back
    return np.array(
        [
            [le_root, sign * half_body],
            [le_tip, sign * half_span],
            [le_tip - chord_tip, sign * half_span],
            [u_root - chord_root / 2, sign * half_body],
        ]
    )


def aircraft(fine: str, rng: np.random.Generator) -> Shape:
    body_rgb, wing_rgb = (235, 235, 238), (205, 208, 212)
    if fine == "airliner":
        L = float(rng.uniform(35, 70))
        span, fw, sweep, cr, ct, uw = L * float(rng.uniform(0.95, 1.05)), 0.085 * L, 28.0, 0.2 * L, 0.06 * L, 0.02 * L
        tail_span, tail_c = 0.32 * L, 0.08 * L
    elif fine == "transport":
        L = float(rng.uniform(25, 45))
        span, fw, sweep, cr, ct, uw = L * float(rng.uniform(1.15, 1.3)), 0.13 * L, 5.0, 0.14 * L, 0.08 * L, 0.06 * L
        tail_span, tail_c = 0.4 * L, 0.1 * L
        body_rgb, wing_rgb = (110, 120, 100), (100, 110, 92)
    elif fine == "fighter":
        L = float(rng.uniform(14, 20))
        span, fw = L * float(rng.uniform(0.6, 0.7)), 0.1 * L
        body_rgb = wing_rgb = (140, 145, 150)
        s = Shape(
            "aircraft",
            fine,
            L,
            span,
            [
                Part(rect(-0.5 * L, 0.42 * L, -fw / 2, fw / 2), 4.0, body_rgb),
                Part(np.array([[0.5 * L, 0.0], [0.42 * L, fw / 2], [0.42 * L, -fw / 2]]), 4.0, body_rgb),
            ],
        )
        for sign in (-1.0, 1.0):
            s.parts.append(
                Part(
                    np.array(
                        [
                            [0.15 * L, sign * fw / 2],
                            [-0.38 * L, sign * span / 2],
                            [-0.45 * L, sign * span / 2],
                            [-0.45 * L, sign * fw / 2],
                        ]
                    ),
                    1.0,
                    wing_rgb,
                )
            )
        s.points += [(-0.45 * L, 0.0, 14.0), (0.1 * L, 0.0, 12.0)]
        return s
    elif fine == "light":
        L = float(rng.uniform(7, 12))
        span, fw, sweep, cr, ct, uw = L * float(rng.uniform(1.2, 1.4)), 0.1 * L, 0.0, 0.15 * L, 0.12 * L, 0.15 * L
        tail_span, tail_c = 0.35 * L, 0.1 * L
    else:
        raise ValueError(f"unknown aircraft type {fine!r}")
    s = Shape(
        "aircraft",
        fine,
        L,
        span,
        [
            Part(rect(-0.5 * L, 0.45 * L, -fw / 2, fw / 2), 4.0, body_rgb),
            Part(ellipse(0.45 * L, 0.0, 0.05 * L, fw / 2, 12), 4.0, body_rgb),
        ],
    )
    for sign in (-1.0, 1.0):
        s.parts.append(Part(_wing(uw, cr, ct, fw / 2, span / 2, sweep, sign), 0.0, wing_rgb))
        s.parts.append(Part(_wing(-0.44 * L, tail_c, tail_c * 0.5, fw / 2, tail_span / 2, sweep, sign), 0.0, wing_rgb))
    if fine == "airliner":
        s.points += [(uw, 0.3 * span / 2, 18.0), (uw, -0.3 * span / 2, 18.0), (-0.45 * L, 0.0, 15.0)]
    elif fine == "transport":
        s.points += [
            (uw + 0.05 * L, 0.25 * span / 2, 16.0),
            (uw + 0.05 * L, -0.25 * span / 2, 16.0),
            (-0.47 * L, 0.0, 16.0),
        ]
    else:
        s.points += [(0.4 * L, 0.0, 10.0)]
    return s


def oil_tank(fine: str, rng: np.random.Generator) -> Shape:
    if fine == "floating_roof":
        d = float(rng.uniform(20, 70))
        rim = max(1.5, 0.04 * d)
        s = Shape(
            "oil_tank",
            fine,
            d,
            d,
            [
                Part(ellipse(0, 0, d / 2, d / 2, 32), 10.0, (225, 225, 220)),
                Part(ellipse(0, 0, d / 2 - rim, d / 2 - rim, 32), -12.0, (150, 150, 140)),
            ],
        )
        s.points += [(-d / 2, 0.0, 20.0)]
        return s
    if fine == "fixed_roof":
        d = float(rng.uniform(15, 50))
        t = np.linspace(math.pi / 2, 3 * math.pi / 2, 16)  # the sensor-facing (west, -u) half
        outer = np.stack([d / 2 * np.cos(t), d / 2 * np.sin(t)], axis=1)
        inner = np.stack(
            [(d / 2 - max(1.5, 0.06 * d)) * np.cos(t[::-1]), (d / 2 - max(1.5, 0.06 * d)) * np.sin(t[::-1])], axis=1
        )
        s = Shape(
            "oil_tank",
            fine,
            d,
            d,
            [
                Part(ellipse(0, 0, d / 2, d / 2, 32), -3.0, (235, 235, 232)),
                Part(np.concatenate([outer, inner]), 12.0, (220, 220, 215)),
            ],
        )
        s.points += [(0.0, 0.0, 16.0)]
        return s
    raise ValueError(f"unknown oil tank type {fine!r}")


def car(fine: str, rng: np.random.Generator) -> Shape:
    colour = [(200, 30, 30), (30, 30, 30), (230, 230, 230), (40, 70, 160), (160, 160, 165)][int(rng.integers(5))]
    if fine == "sedan":
        L, W = 4.5, 1.8
    elif fine == "truck":
        L, W = float(rng.uniform(9, 12)), 2.5
    elif fine == "bus":
        L, W = 12.0, 2.55
        colour = (230, 200, 40)
    else:
        raise ValueError(f"unknown car type {fine!r}")
    s = Shape("car", fine, L, W, [Part(rect(-L / 2, L / 2, -W / 2, W / 2), 8.0, colour)])
    s.points += [(0.0, 0.0, 12.0)]
    return s


def bridge(span_m: float, rng: np.random.Generator) -> Shape:
    """A bridge deck of length ``span_m`` along u, with a multipath ghost line beside it."""
    w = float(rng.uniform(10, 28))
    s = Shape(
        "bridge",
        None,
        span_m,
        w,
        [
            Part(rect(-span_m / 2, span_m / 2, -w / 2, w / 2), 4.0, (150, 150, 150)),
            Part(rect(-span_m / 2, span_m / 2, -w / 2, -w / 2 + 2.0), 10.0, (170, 170, 170)),
        ],
    )
    # Deck-water double bounce images as a bright line offset from the deck (not part of the object).
    off = float(rng.uniform(10, 18))
    s.parts.append(
        Part(rect(-span_m / 2 * 0.7, span_m / 2 * 0.7, w / 2 + off, w / 2 + off + 2.0), 6.0, (0, 0, 0), in_box=False)
    )
    return s


def pier(length_m: float, width_m: float) -> Shape:
    """One pier of a harbour: concrete deck with bright (double-bounce) edges; u points into the water."""
    s = Shape(
        "harbor",
        None,
        length_m,
        width_m,
        [
            Part(rect(-length_m / 2, length_m / 2, -width_m / 2, width_m / 2), 10.0, (175, 170, 160)),
            Part(rect(-length_m / 2, length_m / 2 - 3.0, -width_m / 2 + 3.0, width_m / 2 - 3.0), 0.0, (150, 145, 135)),
        ],
    )
    return s


BUILDERS = {"ship": ship, "aircraft": aircraft, "oil_tank": oil_tank, "car": car}
FINE_TYPES = {"ship": SHIP_TYPES, "aircraft": AIRCRAFT_TYPES, "oil_tank": TANK_TYPES, "car": CAR_TYPES}
