"""FUSAR-KLIP's landform VQA from land-cover masks (paper 004, §5.3 VQA, Table 6: Main Land,
All Land, Reg Land).

The sample's ``landcover.mask`` (single-band class-index raster, path relative to the samples file)
is read once per sample; pixels whose value is not in ``landcover.classes`` (nodata, unlabelled) are
ignored. Class shares are measured on the mask's own grid, so a mask coarser than the image is fine.

- ``landform_main``: the class covering most labelled pixels (ties -> name); asked whenever the
  mask has labelled pixels.
- ``landform_all``: sorted classes covering at least ``landform_min_fraction`` (default 5%) of the
  labelled pixels; text comma-separated.
- ``landform_region``: the majority class of one 3x3 grid cell (numbered as in
  :mod:`sarvlm.core.vocabulary`); asked only for cells whose majority class covers at least half the
  cell's labelled pixels, so the answer is unambiguous. ``params`` hold ``cell`` and ``region`` (the
  cell's box in original pixels).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sarvlm.core.errors import SarvlmError
from sarvlm.core.vocabulary import GRID_SIZE, cell_box, same_answer
from sarvlm.tasks.base import Draft, SampleView, TaskContext, choose, single_turn, vqa_question
from sarvlm.tasks.parsing import category_answer, category_list_answer
from sarvlm.tasks.scoring import score_multi_label, score_single_label
from sarvlm.tasks.spec import TaskSpec

TASKS = ("landform_main", "landform_all", "landform_region")
REGION_MIN_SHARE = 0.5


@dataclass(frozen=True)
class LandcoverShares:
    """Class shares of a mask: over the whole image and per 3x3 grid cell."""

    overall: dict[str, float]
    cells: dict[int, dict[str, float]]


def _shares(counts: np.ndarray, names: dict[int, str]) -> dict[str, float]:
    total = int(sum(counts[v] for v in names))
    if total == 0:
        return {}
    out: dict[str, float] = {}
    for v, name in names.items():
        if counts[v]:
            out[name] = out.get(name, 0.0) + counts[v] / total
    return out


def landcover_shares(view: SampleView) -> LandcoverShares | None:
    """Read the sample's land-cover mask and measure class shares (None without a mask)."""
    lc = view.record.landcover
    if lc is None:
        return None
    from sarvlm.core.paths import resolve_in_root
    from sarvlm.io.raster import read_raster

    path = resolve_in_root(
        view.base_dir,
        lc.mask,
        allow_outside=view.allow_outside_root,
        what=f"record {view.record.id!r}: landcover.mask",
    )
    mask = read_raster(path, bands=1)[0]
    if mask.dtype.kind not in "iu":
        raise SarvlmError(f"{path}: land-cover mask must hold integer class values, got {mask.dtype}")
    size = max(int(mask.max(initial=0)), max(lc.classes, default=0)) + 1
    if min(lc.classes, default=0) < 0:
        raise SarvlmError(f"record {view.record.id!r}: landcover.classes: negative class value")
    names = {int(k): v for k, v in lc.classes.items()}
    flat = mask.astype(np.int64, copy=False)
    overall = _shares(np.bincount(flat.ravel(), minlength=size), names)
    h, w = mask.shape
    cells: dict[int, dict[str, float]] = {}
    for cell in range(1, GRID_SIZE * GRID_SIZE + 1):
        x1, y1, x2, y2 = cell_box(cell, w, h)
        part = flat[int(round(y1)) : int(round(y2)), int(round(x1)) : int(round(x2))]
        cells[cell] = _shares(np.bincount(part.ravel(), minlength=size), names) if part.size else {}
    return LandcoverShares(overall, cells)


def _top(shares: dict[str, float]) -> tuple[str, float]:
    return min(shares.items(), key=lambda kv: (-kv[1], kv[0]))


def generate(task: str, view: SampleView, ctx: TaskContext, rng: random.Random) -> Iterator[Draft]:
    """Generate examples of one landform task for one sample (needs ``landcover``)."""
    if "landcover" not in view.cache:  # read the mask once for all landform tasks of a sample
        view.cache["landcover"] = landcover_shares(view)
    shares = view.cache["landcover"]
    if shares is None or not shares.overall:
        return
    if task == "landform_main":
        main, _ = _top(shares.overall)
        q = vqa_question("What is the main landform type in this SAR image?")
        yield single_turn(task, q, main, main, {})
    elif task == "landform_all":
        kinds = sorted(c for c, s in shares.overall.items() if s >= ctx.landform_min_fraction)
        q = vqa_question("What landform types are present in this SAR image?")
        yield single_turn(task, q, ", ".join(kinds), kinds, {"min_fraction": ctx.landform_min_fraction})
    elif task == "landform_region":
        clear = [
            c
            for c in range(1, GRID_SIZE * GRID_SIZE + 1)
            if shares.cells[c] and _top(shares.cells[c])[1] >= REGION_MIN_SHARE
        ]
        for cell in choose(rng, clear, ctx.max_per_sample):
            kind, _ = _top(shares.cells[cell])
            q = vqa_question(
                f"The image is divided into a 3x3 grid whose regions are numbered 1 to 9 from left to right and top "
                f"to bottom. What is the main landform type in region {cell}?"
            )
            region = [round(v, 2) for v in cell_box(cell, view.width, view.height)]
            yield single_turn(task, q, kind, kind, {"cell": cell, "region": region})
    else:
        raise ValueError(f"not a landform task: {task}")


_PAPER = "FUSAR-KLIP (paper 004, HCoT terrain layer)"
SPECS = (
    TaskSpec(
        needs="land-cover masks (record.landcover)",
        name="landform_main",
        paper=_PAPER,
        answer="str land cover",
        generator=generate,
        parser=category_answer,
        scorer=score_single_label,
        metrics=("n", "top1"),
        max_new_tokens=32,
        groups=("landform",),
        matches=same_answer,
        label_vocabulary=True,
    ),
    TaskSpec(
        needs="land-cover masks (record.landcover)",
        name="landform_all",
        paper=_PAPER,
        answer="sorted list[str] of land covers",
        generator=generate,
        parser=category_list_answer,
        scorer=score_multi_label,
        metrics=("n", "accuracy", "precision", "recall", "f1"),
        max_new_tokens=64,
        groups=("landform",),
        matches=same_answer,
        label_vocabulary=True,
    ),
    TaskSpec(
        needs="land-cover masks (record.landcover)",
        name="landform_region",
        paper=_PAPER,
        answer="str land cover of one grid cell",
        generator=generate,
        parser=category_answer,
        scorer=score_single_label,
        metrics=("n", "top1"),
        max_new_tokens=48,
        groups=("landform",),
        matches=same_answer,
        label_vocabulary=True,
    ),
)
