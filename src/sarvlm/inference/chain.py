"""The input chain a model was trained with, replayed at inference (``ask``, ``predict``).

``sarvlm build`` records the preprocessing configuration of its samples (``preprocess.json``
beside the samples file) in the dataset's ``manifest.json`` (``"preprocess"``); ``sarvlm train``
copies it, with the prior cache settings (source, grid, year policy, edge tolerance), into the
trained model's ``inference.json``. :func:`prepare_scene` runs that preprocessing on a raw scene
exactly as ``sarvlm preprocess`` did for training — the same function on the same pixels, so a
tile's pixels are identical — cutting it into the training tile size, and returns one
:class:`PreparedImage` per tile with the tile's offset in the scene and its georeference, from
which :func:`tile_prior` samples the prior with the training cache's settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarvlm.core.errors import SarvlmError
from sarvlm.training.input_chain import CHAIN_FILE


@dataclass
class PreparedImage:
    """One image given to the model: a preprocessed tile of a scene (or the image as given)."""

    id: str
    path: Path
    width: int
    height: int
    georef: Any = None
    col_off: int = 0  # where the tile starts in the scene (scene pixels)
    row_off: int = 0
    scale_x: float = 1.0  # scene pixels per tile pixel
    scale_y: float = 1.0

    def to_scene(self, box: list[float]) -> list[float]:
        """A box ``[x1, y1, x2, y2]`` in tile pixels → scene pixels."""
        x1, y1, x2, y2 = box
        return [
            round(self.col_off + x1 * self.scale_x, 2),
            round(self.row_off + y1 * self.scale_y, 2),
            round(self.col_off + x2 * self.scale_x, 2),
            round(self.row_off + y2 * self.scale_y, 2),
        ]


def read_chain(model_dir: str | Path) -> dict[str, Any] | None:
    """The saved chain of a trained model directory (None when it has none, e.g. a stock checkpoint)."""
    path = Path(model_dir) / CHAIN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SarvlmError(f"{path}: malformed JSON ({exc.msg})") from None


def needs_preprocessing(image: Path) -> bool:
    """A GeoTIFF that ``sarvlm preprocess`` did not write (no ``sarvlm_steps`` tag) is a raw scene;
    PNG/JPEG and preprocessed outputs are given to the model as they are."""
    if image.suffix.lower() not in (".tif", ".tiff"):
        return False
    from sarvlm.io.raster import raster_info

    return "sarvlm_steps" not in raster_info(image).tags


def prepare_scene(image: str | Path, preprocess: dict[str, Any], out_dir: str | Path) -> list[PreparedImage]:
    """Preprocess a raw scene with the saved training configuration into ``out_dir``; one entry
    per tile (scene order). Quality screening, which only decides what enters a dataset, is off."""
    from sarvlm.core.record import read_samples
    from sarvlm.preprocess.pipeline import PreprocessConfig, preprocess_raster

    fields = set(PreprocessConfig.__dataclass_fields__)
    unknown = sorted(set(preprocess) - fields)
    if unknown:
        raise SarvlmError(f"saved preprocessing has unknown option(s) {unknown} (made by a newer sarvlm?)")
    config = PreprocessConfig(**{**preprocess, "screen": False, "plots": False, "overwrite": True})
    samples = preprocess_raster(Path(image), Path(out_dir), config)
    out = []
    for rec in read_samples(samples):
        tile = rec.meta.get("tile") or {}
        out.append(
            PreparedImage(
                id=rec.id,
                path=rec.image_path(samples.parent),
                width=rec.width,
                height=rec.height,
                georef=rec.georef,
                col_off=int(tile.get("col_off", 0)),
                row_off=int(tile.get("row_off", 0)),
                scale_x=float(tile.get("src_width", rec.width)) / rec.width,
                scale_y=float(tile.get("src_height", rec.height)) / rec.height,
            )
        )
    if not out:
        raise SarvlmError(
            f"{image}: smaller than the training tile size (tile_m {config.tile_m} m): no tile to ask about "
            "(pass --no-preprocess to give the image as it is)"
        )
    return out


def tile_prior(
    prepared: PreparedImage, priors: dict[str, Any], year: int | None, source: Any
) -> tuple[Any | None, str]:
    """The prior of one prepared image with the training cache's settings, and '' or why there is none."""
    from sarvlm.priors.anchor_grid import footprint_from_georef
    from sarvlm.priors.sampling import sample_grid

    if prepared.georef is None:
        return None, "no georeference"
    if year is None:
        return None, "no year (pass --year)"
    try:
        footprint_from_georef(prepared.georef, prepared.width, prepared.height)
    except SarvlmError as exc:
        return None, f"unsupported footprint: {exc}"
    n_lon, n_lat = priors.get("grid", (8, 8))
    extra = {"anchors": priors["anchors"]} if "anchors" in priors else {}
    grid = sample_grid(
        source,
        None,  # checked above; placed from the georeference, as the prior cache does
        year,
        int(n_lon),
        int(n_lat),
        prepared.width,
        prepared.height,
        prepared.georef,
        year_policy=priors.get("year_policy", "nearest"),
        edge_tolerance=float(priors.get("edge_tolerance", 0.05)),
        **extra,
    )
    if not grid.valid.any():
        return None, "outside the source" if grid.year is None else "source NoData"
    return grid, ""
