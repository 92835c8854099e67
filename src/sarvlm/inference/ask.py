"""Ask a model one question about one SAR image (optionally with an optical partner and a prior).

The prior comes from ``--bbox`` + ``--year`` + a prior source (``sarvlm.priors.open_source``, default:
the source saved with the model); for a georeferenced GeoTIFF the footprint is read from the file
when no box is given. Without a box or a georeferenced image, without a year, or with
``no_prior``, the model runs without a prior; every answer says whether a prior was used and, if
not, why (``prior.used``, ``prior.reason``).

The training chain: a model trained by ``sarvlm train`` carries ``inference.json`` (see
:mod:`sarvlm.inference.chain`). A raw GeoTIFF scene (one ``sarvlm preprocess`` did not write) is
then preprocessed with the training configuration — same speckle filter, stretch, uint8, band
choice, and the same SRC tile size — so the model sees what it was trained on; a scene larger than
one tile is asked tile by tile and the answers are merged: counts are summed, detected boxes are
mapped back to scene pixels, other answers are listed per tile (``Answer.tiles``). Each tile's
prior is sampled from its own georeference with the prior cache's settings. ``preprocess=False``
(``--no-preprocess``) gives the file to the model as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarvlm.core.errors import InputError, SarvlmError
from sarvlm.core.example import IMAGE_PLACEHOLDER
from sarvlm.inference.generate import GenerationOptions, Query, generate_batch


@dataclass
class Answer:
    """The model's answer, its parsed form (if a task was given) and the prior used."""

    answer: str
    parsed: Any = None
    task: str | None = None
    prior_year: int | None = None
    prior_valid: int = 0  # valid anchor nodes (0 = no prior; summed over tiles)
    prior_reason: str = ""  # why no prior was used ('' when one was)
    preprocessed: bool = False  # the training preprocessing chain was applied
    tiles: list[dict[str, Any]] | None = None  # per tile: id, offset, answer, parsed, prior, pixel hash

    @property
    def prior_used(self) -> bool:
        return self.prior_valid > 0

    def prior_line(self) -> str:
        """One line saying whether a prior was used."""
        if self.prior_used:
            return f"prior: used (year {self.prior_year}, {self.prior_valid} valid anchor nodes)"
        return f"prior: none ({self.prior_reason or 'not requested'})"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "answer": self.answer,
            "task": self.task,
            "parsed": self.parsed,
            "prior": {
                "used": self.prior_used,
                "year": self.prior_year,
                "valid_nodes": self.prior_valid,
                "reason": self.prior_reason or None,
            },
            "preprocessed": self.preprocessed,
        }
        if self.tiles is not None:
            out["tiles"] = self.tiles
        return out


def _image_georef(path: Path) -> Any:
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    from sarvlm.io.raster import raster_info

    return raster_info(path).georef


def sample_prior(
    settings: Any,
    image_path: Path,
    width: int,
    height: int,
    *,
    bbox: list[float] | None,
    year: int | None,
    prior_source: str | None,
) -> Any:
    """The anchor-grid prior of the image, or None when there is nothing to sample it with.

    An explicit ``bbox`` needs a source (argument or the model's saved ``prior_source``) and a year,
    else it is an error. A georeferenced GeoTIFF without a box is used when both are available.
    """
    spec = prior_source or settings.prior_source
    if bbox is not None:
        if not spec:
            raise InputError("prior: --bbox given but no prior source (pass --prior-source SPEC, or --no-prior)")
        if year is None:
            raise InputError("prior: --bbox needs --year (the AlphaEarth layer to use)")
        georef = None
    else:
        if not spec or year is None:
            return None
        georef = _image_georef(image_path)
        if georef is None:
            return None
    from sarvlm.priors import open_source, sample_grid

    n_lon, n_lat = settings.prior_grid
    return sample_grid(open_source(spec), bbox, year, n_lon, n_lat, width, height, georef)


def ask(
    model: Any,
    image: str | Path,
    question: str,
    *,
    optical: str | Path | None = None,
    bbox: list[float] | None = None,
    year: int | None = None,
    prior_source: str | None = None,
    no_prior: bool = False,
    task: str | None = None,
    options: GenerationOptions | None = None,
    dtype: Any = "auto",
    device: Any = "auto",
    attention: str | None = "auto",
    preprocess: bool = True,
) -> Answer:
    """Answer ``question`` about ``image``.

    Args:
        model: a model name/path for :func:`sarvlm.models.loading.load_model`, or ``(model, processor)``.
        image: the SAR image (PNG/JPEG/GeoTIFF).
        question: the instruction; ``<image>`` placeholders are added in front (SAR, then optical).
        optical: an optional co-located optical image.
        bbox, year, prior_source: where and when to sample the prior (see module docs).
        no_prior: run without a prior even when one could be sampled.
        task: a sarvlm task name (``count``, ``detect``, ...) to parse the answer and pick its token budget.
        preprocess: apply the model's saved training chain to a raw GeoTIFF scene (module docs).
        dtype, device, attention: where and how to run a model loaded here (default ``auto``: CUDA → MPS →
            CPU, bf16 where supported, FlashAttention 2 or SDPA; see :mod:`sarvlm.models.device`).
    """
    import tempfile

    from sarvlm.inference.chain import needs_preprocessing, prepare_scene, read_chain

    # every input is checked before the (slow) model load
    if not question.strip():
        raise SarvlmError("question: empty")
    if task is not None:
        from sarvlm.tasks.registry import GENERATORS

        if task not in GENERATORS:
            raise SarvlmError(f"--task: unknown task {task!r} (expected one of {', '.join(sorted(GENERATORS))})")
    from sarvlm.io.raster import check_whole_image, raster_info

    image = Path(image)
    chain = None
    if not isinstance(model, tuple) and Path(str(model)).is_dir():
        chain = read_chain(model)
    chain_possible = preprocess and chain is not None and chain.get("preprocess") is not None
    for path in (image, optical):
        if path is None:
            continue
        if chain_possible and path == image and optical is None and bbox is None:
            raster_info(path)  # a raw scene is tiled window by window: only its blocks must fit the limit
        else:
            check_whole_image(path)  # read whole: signature, driver and declared size, no pixel decoded
    if isinstance(model, tuple):
        net, processor = model
    else:
        from sarvlm.models.loading import load_model

        net, processor = load_model(model, dtype=dtype, device=device, attention=attention)
    options = options or GenerationOptions()
    use_chain = (
        preprocess
        and chain is not None
        and chain.get("preprocess") is not None
        and bbox is None
        and optical is None
        and needs_preprocessing(image)
    )
    if not use_chain:
        return _ask_one(
            net, processor, image, question, optical, bbox, year, prior_source, no_prior, task, options, chain
        )
    with tempfile.TemporaryDirectory(prefix="sarvlm-ask-") as tmp:
        tiles = prepare_scene(image, chain["preprocess"], Path(tmp) / "pre")
        return _ask_tiles(net, processor, tiles, question, year, prior_source, no_prior, task, options, chain)


def _ask_one(
    net: Any,
    processor: Any,
    image: Path,
    question: str,
    optical: str | Path | None,
    bbox: list[float] | None,
    year: int | None,
    prior_source: str | None,
    no_prior: bool,
    task: str | None,
    options: GenerationOptions,
    chain: dict | None,
) -> Answer:
    sar = processor.load_image(image)
    images = [sar]
    prompt = IMAGE_PLACEHOLDER + "\n"
    if optical is not None:
        images.append(processor.load_image(Path(optical)))
        prompt += IMAGE_PLACEHOLDER + "\n"
    prior, reason = None, "the model fuses no prior" if processor.settings.fusion == "none" else ""
    if no_prior:
        reason = "--no-prior"
    elif processor.settings.fusion != "none":
        if prior_source is None and chain and chain.get("priors"):
            prior_source = chain["priors"].get("source")
        prior = sample_prior(
            processor.settings, image, sar.width, sar.height, bbox=bbox, year=year, prior_source=prior_source
        )
        if prior is None:
            reason = _why_no_prior(processor.settings, image, year, prior_source)
        elif not prior.valid.any():
            prior, reason = None, "outside the source" if prior.year is None else "source NoData"
    query = Query(messages=[{"role": "user", "content": prompt + question}], images=images, prior=prior)
    text = generate_batch(net, processor, [query], options.budget(task), options)[0]
    return Answer(
        answer=text,
        parsed=_parse(task, text, processor, sar.width, sar.height),
        task=task,
        prior_year=getattr(prior, "year", None),
        prior_valid=int(prior.valid.sum()) if prior is not None else 0,
        prior_reason=reason,
    )


def _why_no_prior(settings: Any, image: Path, year: int | None, prior_source: str | None) -> str:
    if not (prior_source or settings.prior_source):
        return "no prior source (pass --prior-source)"
    if year is None:
        return "no year (pass --year)"
    return "no georeference (pass --bbox, or give a georeferenced GeoTIFF)"


def _parse(task: str | None, text: str, processor: Any, width: int, height: int) -> Any:
    if task is None:
        return None
    from sarvlm.tasks.registry import parse_prediction

    return parse_prediction(task, text, coords=processor.settings.coords, width=width, height=height)


def _ask_tiles(
    net: Any,
    processor: Any,
    tiles: list[Any],
    question: str,
    year: int | None,
    prior_source: str | None,
    no_prior: bool,
    task: str | None,
    options: GenerationOptions,
    chain: dict,
) -> Answer:
    import hashlib

    import numpy as np

    from sarvlm.inference.chain import tile_prior

    priors_cfg = dict(chain.get("priors") or {})
    spec = prior_source or priors_cfg.get("source") or processor.settings.prior_source
    if not priors_cfg.get("grid"):
        priors_cfg["grid"] = list(processor.settings.prior_grid)
    source = None
    if not no_prior and processor.settings.fusion != "none" and spec and year is not None:
        from sarvlm.priors import open_source

        source = open_source(spec)
    queries, rows = [], []
    try:
        for t in tiles:
            img = processor.load_image(t.path)
            prior, reason = None, ""
            if no_prior:
                reason = "--no-prior"
            elif processor.settings.fusion == "none":
                reason = "the model fuses no prior"
            elif not spec:
                reason = "no prior source (pass --prior-source)"
            elif source is None:
                reason = "no year (pass --year)"
            else:
                prior, reason = tile_prior(t, priors_cfg, year, source)
            pixels = np.asarray(img)
            rows.append((t, img, prior, reason, hashlib.sha256(pixels.tobytes()).hexdigest()))
            prompt = IMAGE_PLACEHOLDER + "\n" + question
            queries.append(Query(messages=[{"role": "user", "content": prompt}], images=[img], prior=prior))
    finally:
        if source is not None:
            source.close()
    texts = generate_batch(net, processor, queries, options.budget(task), options)
    tile_rows = []
    for (t, img, prior, reason, digest), text in zip(rows, texts, strict=True):
        parsed = _parse(task, text, processor, img.width, img.height)
        if task == "detect" and isinstance(parsed, list):
            parsed = [t.to_scene(list(b)) for b in parsed]
        tile_rows.append(
            {
                "id": t.id,
                "offset": [t.col_off, t.row_off],
                "size": [t.width, t.height],
                "answer": text,
                "parsed": parsed,
                "prior": {
                    "used": prior is not None,
                    "year": getattr(prior, "year", None),
                    "valid_nodes": int(prior.valid.sum()) if prior is not None else 0,
                    "reason": reason or None,
                },
                "pixels_sha256": digest,
            }
        )
    merged = _merge(task, [r["parsed"] for r in tile_rows])
    used = [r for r in tile_rows if r["prior"]["used"]]
    reasons = sorted({r["prior"]["reason"] for r in tile_rows if r["prior"]["reason"]})
    answer = texts[0] if len(texts) == 1 else "\n".join(f"[{r['id']}] {r['answer']}" for r in tile_rows)
    return Answer(
        answer=answer,
        parsed=merged,
        task=task,
        prior_year=used[0]["prior"]["year"] if used else None,
        prior_valid=sum(r["prior"]["valid_nodes"] for r in tile_rows),
        prior_reason="" if len(used) == len(tile_rows) else "; ".join(reasons),
        preprocessed=True,
        tiles=tile_rows,
    )


def _merge(task: str | None, parsed: list[Any]) -> Any:
    """One scene answer from per-tile answers: counts summed, boxes concatenated (already in scene
    pixels), anything else listed per tile. Shifted edge tiles overlap, so a target seen by two
    tiles is counted twice (documented in docs/inference.md)."""
    if task is None:
        return None
    if len(parsed) == 1:
        return parsed[0]
    if task == "count":
        known = [p for p in parsed if isinstance(p, int | float)]
        return int(sum(known)) if known else None
    if task == "detect":
        return [b for p in parsed if isinstance(p, list) for b in p]
    return parsed
