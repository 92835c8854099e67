"""Where a target lies in an image: FUSAR-GPT's 3x3 grid cells and SARLANG-1M's five regions.

Both rules look at the centre of a target's box ``((x1 + x2) / 2, (y1 + y2) / 2)`` in original pixels.

Grid cells (FUSAR-GPT spatial localization). The image is cut into 3 x 3 equal cells numbered
1..9 row-major from the top-left::

    1 2 3
    4 5 6
    7 8 9

Cell boundaries are half-open: column ``c`` covers ``[c*W/3, (c+1)*W/3)``, so a centre exactly on the
border between two cells belongs to the cell to its right (or below). The image's right and bottom
edges are closed (a centre at ``x == W`` is in the last column), and centres outside the image are
clamped into the nearest cell.

Five regions (SARLANG-1M object positioning, Table 5: left, right, top, bottom, center). A centre in
the middle cell of the 3 x 3 grid (cell 5) is ``center``. Otherwise the region is the side the centre
is displaced towards the most, measured from the image centre in units of the image's half-width and
half-height; a tie between a horizontal and a vertical side (exact diagonal) goes to the horizontal
side (``left``/``right``). "Where are the most ships positioned?" is answered with the region holding
the most ships, ties broken in the order center, left, right, top, bottom.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

GRID_SIZE = 3
REGIONS = ("center", "left", "right", "top", "bottom")


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


def grid_cells(boxes: Iterable[Sequence[float]], width: float, height: float, n: int = GRID_SIZE) -> list[int]:
    """Sorted, de-duplicated cells that hold at least one box centre (the FUSAR-GPT grid answer)."""
    cells = {grid_cell(*box_centre(b), width, height, n) for b in boxes}
    return sorted(cells)


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
