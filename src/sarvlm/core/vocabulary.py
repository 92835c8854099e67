"""The words answers are written in: one table for every layer that writes, reads or scores them.

Data quality control, the task generators, the answer parsers, the scorers, the synthetic world's
captions and the demo report all read this module, so a reference answer and a prediction that name
the same thing in different words compare equal everywhere.

Categories. The canonical object categories are SARDet-100k's six (``ship``, ``aircraft``, ``car``,
``tank``, ``bridge``, ``harbor``); land covers are the synthetic world's six classes. Two synonym
tables map other names onto them, for two different jobs:

- :data:`ANSWER_SYNONYMS` (canonical -> generic English surface forms: plurals, "vessel", "storage
  tank", "oil_tank") is what free-text answers are read and compared with (:func:`answer_key`). It
  never contains a fine-grained type name, so "tanker" stays a ship *type* when fine-level
  classification is scored.
- :data:`DATASET_CLASSES` (dataset family -> {class name in its annotation files: canonical
  category}) is what quality control maps *annotation labels* with (:func:`canonical_category`):
  SAR-AIRcraft-1.0 labels its boxes with aircraft types (``A320/321``) and FUSAR-Ship with ship
  types (``Tanker``), which are coarse ``aircraft`` / ``ship`` objects there.

Numbers: :data:`CARDINALS` (``zero`` .. ``twenty``, tens, ``hundred``), :data:`COUNT_PHRASES` that
also state a count in answers ("no ships", "a pair of"), :func:`number_word` for writing counts.

Positions: FUSAR-GPT's 3x3 grid cells and SARLANG-1M's five regions, both decided by the centre of
a target's box ``((x1 + x2) / 2, (y1 + y2) / 2)`` in original pixels.

Grid cells are numbered 1..9 row-major from the top-left::

    1 2 3
    4 5 6
    7 8 9

Cell boundaries are half-open: column ``c`` covers ``[c*W/3, (c+1)*W/3)``, so a centre exactly on the
border between two cells belongs to the cell to its right (or below). The image's right and bottom
edges are closed (a centre at ``x == W`` is in the last column), and centres outside the image are
clamped into the nearest cell. :func:`grid_cell` returns the number; :func:`cell_name` the words
captions use for it ("upper left", "top", ...).

Five regions (SARLANG-1M object positioning, Table 5: left, right, top, bottom, center). A centre in
the middle cell of the 3 x 3 grid (cell 5) is ``center``. Otherwise the region is the side the centre
is displaced towards the most, measured from the image centre in units of the image's half-width and
half-height; a tie between a horizontal and a vertical side (exact diagonal) goes to the horizontal
side (``left``/``right``). "Where are the most ships positioned?" is answered with the region holding
the most ships, ties broken in the order center, left, right, top, bottom.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

# --- categories -------------------------------------------------------------------------------

# Canonical object categories (SARDet-100k's classes) with the generic words answers use for them.
OBJECT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "ship": ("ships", "vessel", "vessels", "boat", "boats"),
    "aircraft": (
        "aircrafts",
        "airplane",
        "airplanes",
        "aeroplane",
        "aeroplanes",
        "plane",
        "planes",
        "jet",
        "jets",
    ),
    "tank": (
        "tanks",
        "oil tank",
        "oil tanks",
        "oil_tank",
        "oil_tanks",
        "oil-tank",
        "oiltank",
        "storage tank",
        "storage tanks",
        "storage-tank",
        "storage_tank",
    ),
    "bridge": ("bridges",),
    "car": ("cars", "vehicle", "vehicles", "automobile", "automobiles", "small vehicle", "small-vehicle"),
    "harbor": ("harbors", "harbour", "harbours", "port", "ports"),
    "runway": ("runways", "airstrip"),
}
OBJECT_CATEGORIES: tuple[str, ...] = ("ship", "aircraft", "car", "tank", "bridge", "harbor")

# Land covers (the synthetic world's classes and FUSAR-KLIP's landform answers).
LANDCOVER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "water": ("waters", "sea", "river", "lake", "ocean", "water body", "water bodies"),
    "urban": ("city", "built-up", "built up", "buildings", "residential", "urban area", "urban areas"),
    "farmland": ("farmlands", "cropland", "croplands", "agricultural land", "agriculture", "fields", "field"),
    "grassland": ("grasslands", "grass", "meadow", "meadows"),
    "forest": ("forests", "woodland", "trees", "woods"),
    "bare": ("bare land", "bare soil", "barren", "barren land", "desert", "bareland"),
}
LANDCOVERS: tuple[str, ...] = tuple(LANDCOVER_SYNONYMS)

# Canonical name -> every surface form that names it in an answer (the canonical name first).
ANSWER_SYNONYMS: dict[str, tuple[str, ...]] = {
    canon: (canon, *forms) for canon, forms in {**OBJECT_SYNONYMS, **LANDCOVER_SYNONYMS}.items()
}

# Class names of public SAR datasets' annotation files -> canonical coarse category (quality control).
DATASET_CLASSES: dict[str, dict[str, str]] = {
    # SARDet-100k (NeurIPS 2024): six classes.
    "sardet-100k": {
        "ship": "ship",
        "aircraft": "aircraft",
        "car": "car",
        "tank": "tank",
        "bridge": "bridge",
        "harbor": "harbor",
    },
    # SSDD and HRSID: ships only.
    "ssdd/hrsid": {"ship": "ship"},
    # SAR-AIRcraft-1.0 (Gaofen-3): seven aircraft types ("other" is left out: too generic to map).
    "sar-aircraft": {
        "a220": "aircraft",
        "a320/321": "aircraft",
        "a330": "aircraft",
        "arj21": "aircraft",
        "boeing737": "aircraft",
        "boeing787": "aircraft",
    },
    # FUSAR-Ship (Gaofen-3): ship types.
    "fusar-ship": {
        "cargo": "ship",
        "cargo ship": "ship",
        "tanker": "ship",
        "fishing": "ship",
        "passenger": "ship",
        "tug": "ship",
        "dredger": "ship",
        "high speed craft": "ship",
        "highspeedcraft": "ship",
        "law enforce": "ship",
        "lawenforce": "ship",
    },
    # DOTA (optical, but its names reach SAR sets converted from it).
    "dota": {
        "plane": "aircraft",
        "helicopter": "aircraft",
        "ship": "ship",
        "storage-tank": "tank",
        "harbor": "harbor",
        "bridge": "bridge",
        "large-vehicle": "car",
        "small-vehicle": "car",
    },
    # Names seen in SARLANG-1M's and other SAR instruction sets.
    "common": {"airliner": "aircraft", "dock": "harbor"},
}

# Annotation label (lower case) -> canonical category: dataset class names, then generic object words.
SYNONYMS: dict[str, str] = {
    **{name: canon for table in DATASET_CLASSES.values() for name, canon in table.items()},
    **{form: canon for canon, forms in OBJECT_SYNONYMS.items() for form in (canon, *forms)},
}
# Dataset class names that are fine-grained types of their canonical category (kept as the object's
# fine type when quality control maps them to the coarse category).
FINE_TYPE_FAMILIES = ("sar-aircraft", "fusar-ship")


def _normalise(name: str) -> str:
    return " ".join(name.strip().lower().replace("\u2019", "'").split())


def canonical_category(name: str, synonyms: Mapping[str, str] | None = SYNONYMS) -> str:
    """An annotation label through a synonym table (case-insensitive; ``_``/``-`` also read as spaces):
    ``Oil_Tank`` -> ``tank``, ``A320/321`` -> ``aircraft``. Unknown names, and every name when
    ``synonyms`` is None, are returned as given."""
    if not synonyms:
        return name
    key = _normalise(name)
    return synonyms.get(key) or synonyms.get(key.replace("_", " ").replace("-", " ")) or name


def is_fine_type(name: str) -> bool:
    """Whether an annotation label is a dataset's fine-grained type (``A330``, ``Tanker``)."""
    key = _normalise(name)
    return any(key in DATASET_CLASSES[f] for f in FINE_TYPE_FAMILIES)


_ANSWER_REVERSE: dict[str, str] = {form: canon for canon, forms in ANSWER_SYNONYMS.items() for form in forms}


@functools.lru_cache(maxsize=4096)
def answer_key(name: str) -> str:
    """How a category-like answer compares: its canonical name through :data:`ANSWER_SYNONYMS`,
    lower case ("Storage tanks" -> ``tank``, "oil_tank" -> ``tank``); unknown names lower-cased."""
    t = _normalise(name).strip(" .")
    return _ANSWER_REVERSE.get(t) or _ANSWER_REVERSE.get(t.replace("_", " ")) or t


def same_answer(a: object, b: object) -> bool:
    """Whether two category answers (a name or a list of names) name the same thing(s)."""
    return answer_keys(a) == answer_keys(b)


def answer_keys(value: object) -> object:
    """:func:`answer_key` of a name, sorted keys of a list of names; anything else unchanged."""
    if isinstance(value, str):
        return answer_key(value)
    if isinstance(value, (list, tuple)):
        return sorted(answer_key(str(x)) for x in value)
    return value


def surface_forms(category: str) -> tuple[str, ...]:
    """Generic words that name ``category`` in an answer (empty for names outside the table)."""
    return ANSWER_SYNONYMS.get(_ANSWER_REVERSE.get(_normalise(category), ""), ())


# --- numbers ----------------------------------------------------------------------------------

_CARDINAL_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
).split()
CARDINALS: dict[str, int] = {
    **{w: i for i, w in enumerate(_CARDINAL_WORDS)},
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
}
# Other phrases that state a count in an answer ("no ships", "a single vessel").
COUNT_PHRASES: dict[str, int] = {"no": 0, "none": 0, "a single": 1, "single": 1, "a pair of": 2, "dozen": 12}
ORDINALS: dict[str, int] = {
    w: i + 1 for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth".split())
}


def number_word(n: int) -> str:
    """A count written in a caption: ``no`` for 0, words up to ten, digits above."""
    if n == 0:
        return "no"
    return _CARDINAL_WORDS[n] if 0 < n <= 10 else str(n)


# --- positions --------------------------------------------------------------------------------

REGIONS = ("center", "left", "right", "top", "bottom")  # SARLANG-1M's five regions (tie-break order)
# Words that name a region in an answer or a caption -> the region.
POSITION_WORDS: dict[str, str] = {
    "left": "left",
    "right": "right",
    "top": "top",
    "upper": "top",
    "up": "top",
    "above": "top",
    "bottom": "bottom",
    "lower": "bottom",
    "below": "bottom",
    "down": "bottom",
    "center": "center",
    "centre": "center",
    "middle": "center",
    "central": "center",
}
GRID_SIZE = 3
# Words captions use for the nine cells (row-major from the top-left).
CELL_NAMES = ("upper left", "top", "upper right", "left", "center", "right", "lower left", "bottom", "lower right")


def box_centre(box: Sequence[float]) -> tuple[float, float]:
    """Centre ``(cx, cy)`` of an ``[x1, y1, x2, y2]`` box."""
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def _band(v: float, size: float, n: int) -> int:
    # Half-open bands [k*size/n, (k+1)*size/n); multiply instead of divide so borders are exact.
    k = int((v * n) // size) if size > 0 else 0
    return min(max(k, 0), n - 1)


def grid_cell(cx: float, cy: float, width: float, height: float, n: int = GRID_SIZE) -> int:
    """Cell number (1..n*n, row-major from the top-left) holding the point ``(cx, cy)``."""
    return _band(cy, height, n) * n + _band(cx, width, n) + 1


def cell_name(cell: int) -> str:
    """Words for a 3x3 grid cell: 1 -> ``upper left``, 5 -> ``center``, 8 -> ``bottom``."""
    if not 1 <= cell <= len(CELL_NAMES):
        raise ValueError(f"grid cell must be in 1..{len(CELL_NAMES)}, got {cell}")
    return CELL_NAMES[cell - 1]


def grid_cells(boxes: Iterable[Sequence[float]], width: float, height: float, n: int = GRID_SIZE) -> list[int]:
    """Sorted, de-duplicated cells that hold at least one box centre (the FUSAR-GPT grid answer)."""
    return sorted({grid_cell(*box_centre(b), width, height, n) for b in boxes})


def cell_box(cell: int, width: float, height: float, n: int = GRID_SIZE) -> list[float]:
    """Pixel box ``[x1, y1, x2, y2]`` of grid cell ``cell`` (1-based, row-major)."""
    if not 1 <= cell <= n * n:
        raise ValueError(f"grid cell must be in 1..{n * n}, got {cell}")
    row, col = divmod(cell - 1, n)
    return [col * width / n, row * height / n, (col + 1) * width / n, (row + 1) * height / n]


def region_of(cx: float, cy: float, width: float, height: float) -> str:
    """One of ``center``, ``left``, ``right``, ``top``, ``bottom`` for a point (see module docstring)."""
    if grid_cell(cx, cy, width, height) == 5:
        return "center"
    dx = (cx - width / 2.0) / (width / 2.0)
    dy = (cy - height / 2.0) / (height / 2.0)
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "top" if dy < 0 else "bottom"


def majority_region(boxes: Iterable[Sequence[float]], width: float, height: float) -> str | None:
    """Region holding the most box centres (ties in the order of :data:`REGIONS`); None without boxes."""
    counts = dict.fromkeys(REGIONS, 0)
    any_box = False
    for b in boxes:
        counts[region_of(*box_centre(b), width, height)] += 1
        any_box = True
    if not any_box:
        return None
    best = max(counts.values())
    return next(r for r in REGIONS if counts[r] == best)


def regions_with(boxes: Iterable[Sequence[float]], width: float, height: float) -> set[str]:
    """All regions that hold at least one box centre."""
    return {region_of(*box_centre(b), width, height) for b in boxes}
