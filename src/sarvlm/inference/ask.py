"""Ask a model one question about one SAR image (optionally with an optical partner and a prior).

The prior comes from ``--bbox`` + ``--year`` + a prior source (``sarvlm.priors.open_source``, default:
the source saved with the model); for a georeferenced GeoTIFF the footprint is read from the file
when no box is given. Without a box or a georeferenced image, without a year, or with
``no_prior``, the model runs without a prior (the answer reports how many anchors were valid).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarvlm.core.errors import SarvlmError
from sarvlm.core.example import IMAGE_PLACEHOLDER
from sarvlm.inference.generate import GenerationOptions, Query, generate_batch


@dataclass
class Answer:
    """The model's answer, its parsed form (if a task was given) and the prior used."""

    answer: str
    parsed: Any = None
    task: str | None = None
    prior_year: int | None = None
    prior_valid: int = 0  # valid anchor nodes (0 = no prior)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "task": self.task,
            "parsed": self.parsed,
            "prior": {"year": self.prior_year, "valid_nodes": self.prior_valid},
        }


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
            raise SarvlmError("prior: --bbox given but no prior source (pass --prior-source SPEC, or --no-prior)")
        if year is None:
            raise SarvlmError("prior: --bbox needs --year (the AlphaEarth layer to use)")
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
    dtype: Any = None,
    device: Any = None,
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
    """
    if isinstance(model, tuple):
        net, processor = model
    else:
        from sarvlm.models.loading import load_model

        net, processor = load_model(model, dtype=dtype, device=device)
    image = Path(image)
    sar = processor.load_image(image)
    images = [sar]
    prompt = IMAGE_PLACEHOLDER + "\n"
    if optical is not None:
        images.append(processor.load_image(Path(optical)))
        prompt += IMAGE_PLACEHOLDER + "\n"
    if not question.strip():
        raise SarvlmError("question: empty")
    prior = None
    if not no_prior and processor.settings.fusion != "none":
        prior = sample_prior(
            processor.settings, image, sar.width, sar.height, bbox=bbox, year=year, prior_source=prior_source
        )
    options = options or GenerationOptions()
    query = Query(messages=[{"role": "user", "content": prompt + question}], images=images, prior=prior)
    text = generate_batch(net, processor, [query], options.budget(task), options)[0]
    parsed = None
    if task is not None:
        try:
            from sarvlm.tasks.registry import parse_prediction
        except ImportError:
            parse_prediction = None
        if parse_prediction is not None:
            parsed = parse_prediction(task, text, coords=processor.settings.coords, width=sar.width, height=sar.height)
    return Answer(
        answer=text,
        parsed=parsed,
        task=task,
        prior_year=getattr(prior, "year", None),
        prior_valid=int(prior.valid.sum()) if prior is not None else 0,
    )
