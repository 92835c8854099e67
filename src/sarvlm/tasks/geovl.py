"""FUSAR-GEOVL-style 8-field captions of synthetic scenes, with recorded corruptions.

Each scene gets a ``structured`` caption whose fields (Terrain, Functionality, Distribution,
Layout, Boundary, Buildings, Roads, Water) are written from the scene's truth only (kind,
land-cover shares, annotated targets), in the short declarative style of FUSAR-GEOVL-1M
("The terrain is classified as ..."). A chosen fraction of fragments is then corrupted with the
kinds of error the FUSAR-KLIP expert check found in LLM-written captions:

- ``wrong_landcover``: a land-cover statement made false (Terrain names another dominant class;
  Buildings / Water claim another coverage level);
- ``wrong_count``: the number of targets changed (Distribution);
- ``swapped``: the field's value taken from another scene where it differs (any field).

Every corruption is recorded in ``meta["geovl_corruptions"]`` as ``{"field", "kind", "true",
"corrupted"}``, so screening (SCIO phase 2) can be scored for precision and recall. Choices
come from the stream ``default_rng([seed, 7, index])``: same seed, same captions.

Used by ``sarvlm synth --geovl-corrupt`` (all scenes at once: :func:`add_geovl_captions`) and
``sarvlm build --geovl-corrupt`` (record by record while streaming: :func:`swap_pool` over every
record first, then :func:`geovl_record` per record); both give the same captions for the same
records, seed and fraction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from sarvlm.core.record import Caption, SampleRecord
from sarvlm.core.vocabulary import box_centre, cell_name, grid_cell
from sarvlm.tasks.category_phrases import CATEGORY_ORDER
from sarvlm.tasks.category_phrases import count_phrase as _count_phrase

GEOVL_FIELDS = ("Terrain", "Functionality", "Distribution", "Layout", "Boundary", "Buildings", "Roads", "Water")
CORRUPTION_KINDS = ("wrong_landcover", "wrong_count", "swapped")
LAND_CLASSES = ("water", "urban", "farmland", "grassland", "forest", "bare")
_FUNCTION = {
    "port": "The area serves as a port for shipping",
    "coast": "The area is a coastal zone",
    "river": "The area is a riverside landscape",
    "airport": "The area serves as an airport for air traffic",
    "rural": "The area is used for agriculture",
}
_LEVELS = {
    "Buildings": (
        "There are no buildings",
        "Some buildings are scattered across the scene",
        "Dense buildings cover much of the scene",
    ),
    "Water": ("There is no open water", "Some open water is present", "Open water covers a large part of the scene"),
}


def _level(share: float) -> int:
    return 0 if share < 0.05 else (1 if share < 0.3 else 2)


def scene_fields(rec: SampleRecord) -> dict[str, str]:
    """The true 8 fields of a synthetic scene (needs ``meta.kind`` and ``meta.landcover_fractions``)."""
    kind = rec.meta["kind"]
    frac = {k: float(v) for k, v in rec.meta.get("landcover_fractions", {}).items()}
    land = [k for k, v in sorted(frac.items(), key=lambda kv: (-kv[1], kv[0])) if v >= 0.05]
    terrain = f"The terrain is classified as mainly {land[0]}" + (f" with {land[1]}" if len(land) > 1 else "")
    by_cat = Counter(o.category for o in rec.objects)
    if by_cat:
        parts = [_count_phrase(c, by_cat[c]) for c in CATEGORY_ORDER if c in by_cat]
        distribution = "The targets are " + ", ".join(parts)
        cells = Counter(cell_name(grid_cell(*box_centre(o.bbox), rec.width, rec.height)) for o in rec.objects)
        layout = f"Most targets lie in the {cells.most_common(1)[0][0]} of the image"
    else:
        distribution = "No targets are present"
        layout = "The scene has no target layout"
    water = frac.get("water", 0.0)
    if water < 0.01:
        boundary = "There is no land-water boundary"
    elif kind in ("port", "coast"):
        boundary = "A coastline separates water from land"
    elif kind == "river":
        boundary = "River banks cross the scene"
    else:
        boundary = "A lake shore is visible"
    urban = frac.get("urban", 0.0)
    if kind == "airport":
        roads = "A runway and taxiway cross the scene"
    elif urban >= 0.05:
        roads = "Streets form a grid between the buildings"
    else:
        roads = "There are no paved roads"
    return {
        "Terrain": terrain,
        "Functionality": _FUNCTION[kind],
        "Distribution": distribution,
        "Layout": layout,
        "Boundary": boundary,
        "Buildings": _LEVELS["Buildings"][_level(urban)],
        "Roads": roads,
        "Water": _LEVELS["Water"][_level(water)],
    }


def _wrong_landcover(name: str, value: str, rng: np.random.Generator) -> str | None:
    if name == "Terrain":
        main = value.split("mainly ", 1)[1].split(" with ")[0]
        others = [c for c in LAND_CLASSES if c != main and c not in value]
        return value.replace(f"mainly {main}", f"mainly {others[int(rng.integers(len(others)))]}", 1)
    if name in _LEVELS:
        choices = [v for v in _LEVELS[name] if v != value]
        return choices[int(rng.integers(len(choices)))]
    return None


def _wrong_count(value: str, rng: np.random.Generator) -> str:
    if value.startswith("No targets"):
        n = int(rng.integers(2, 6))
        return "The targets are " + _count_phrase(CATEGORY_ORDER[int(rng.integers(1, 3))], n)
    words = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    for w in words:
        if f"are {w} " in value or value.startswith(f"The targets are {w} "):
            other = [x for x in words if x != w]
            return value.replace(f"are {w} ", f"are {other[int(rng.integers(len(other)))]} ", 1)
    return "No targets are present"


def swap_pool(truths: Sequence[dict[str, str]]) -> dict[str, list[str]]:
    """Every field's distinct true values over all scenes (what ``swapped`` corruptions draw from)."""
    return {name: sorted({t[name] for t in truths}) for name in GEOVL_FIELDS}


def geovl_record(
    rec: SampleRecord, index: int, pool: dict[str, list[str]], seed: int, corrupt_fraction: float
) -> SampleRecord:
    """``rec`` (the ``index``-th scene) with its ``structured`` 8-field caption added, each fragment
    corrupted with probability ``corrupt_fraction`` and recorded in ``meta.geovl_corruptions``."""
    truth = scene_fields(rec)
    rng = np.random.default_rng([int(seed), 7, index])
    fields = dict(truth)
    corruptions = []
    for name in GEOVL_FIELDS:
        if rng.random() >= corrupt_fraction:
            continue
        options = ["swapped"]
        if name in ("Terrain", "Buildings", "Water"):
            options.append("wrong_landcover")
        if name == "Distribution":
            options.append("wrong_count")
        kind = options[int(rng.integers(len(options)))]
        if kind == "wrong_landcover":
            new = _wrong_landcover(name, truth[name], rng)
        elif kind == "wrong_count":
            new = _wrong_count(truth[name], rng)
        else:
            others = [v for v in pool[name] if v != truth[name]]
            new = others[int(rng.integers(len(others)))] if others else None
        if new is None or new == truth[name]:
            continue
        fields[name] = new
        corruptions.append({"field": name, "kind": kind, "true": truth[name], "corrupted": new})
    text = "\n".join(f"{k}: {fields[k]}." for k in GEOVL_FIELDS)
    cap = Caption(text=text, style="structured", fields=fields, source="sarvlm-synth-geovl")
    meta = dict(rec.meta)
    meta["geovl_corruptions"] = corruptions
    return rec.model_copy(update={"captions": [*rec.captions, cap], "meta": meta})


def add_geovl_captions(records: Sequence[SampleRecord], seed: int, corrupt_fraction: float = 0.0) -> list[SampleRecord]:
    """Records with a ``structured`` 8-field caption added (corrupted fragments recorded in ``meta``)."""
    if not 0.0 <= corrupt_fraction < 1.0:
        raise ValueError(f"corrupt fraction must be in [0, 1), got {corrupt_fraction}")
    pool = swap_pool([scene_fields(r) for r in records])
    return [geovl_record(rec, i, pool, seed, corrupt_fraction) for i, rec in enumerate(records)]
