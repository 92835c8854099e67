"""Everything sarvlm adds to a backbone, saved with every model so loading needs no flags.

The settings live in the model's ``config.json`` under the key ``"sarvlm"`` (so a plain
``from_pretrained`` of the sarvlm class restores them) and are validated here.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sarvlm.core.coords import CONVENTIONS, QWEN_MAX_PIXELS, QWEN_MIN_PIXELS
from sarvlm.core.errors import ConfigurationError

BACKBONES = ("qwen2.5-vl", "qwen3-vl")
CONFIG_KEY = "sarvlm"
# Box convention each backbone was pre-trained with (see sarvlm.core.coords).
DEFAULT_COORDS = {"qwen2.5-vl": "qwen2.5", "qwen3-vl": "qwen3"}


Backbone = Literal["qwen2.5-vl", "qwen3-vl"]


class SarvlmSettings(BaseModel):
    """sarvlm's additions to a Qwen-VL backbone.

    Attributes:
        backbone: ``"qwen2.5-vl"`` or ``"qwen3-vl"``.
        fusion: ``"tlm"`` (FUSAR-GPT), ``"sum"``, ``"concat"`` (Table 6 ablations) or ``"none"``.
        tlm_hidden / tlm_sigma / tlm_eps: the fusion MLP hidden size, Gaussian width in merged-grid
            cells and the normalisation ε of Eq. 8.
        prior_dim: D, size of one prior vector (64 for AlphaEarth).
        prior_source: spec of where priors come from (``sarvlm.priors.open_source``), or None.
        prior_grid: ``(n_lon, n_lat)`` anchor grid; ``n_lon·n_lat`` = S prior tokens for ``concat``.
        prior_images: which images of a sample receive the prior: ``"sar"`` (the first image,
            the one the prior is georeferenced to) or ``"all"`` (co-registered optical too).
        modulate_deepstack: Qwen3-VL only: also apply the fusion to the deepstack features.
        coords: box coordinate convention used in answers (``sarvlm.core.coords``).
        min_pixels / max_pixels: the image processor's resize bounds.
    """

    model_config = ConfigDict(extra="forbid")

    backbone: Backbone = "qwen2.5-vl"
    fusion: Literal["tlm", "sum", "concat", "none"] = "tlm"
    tlm_hidden: int = Field(default=256, gt=0)
    tlm_sigma: float = Field(default=1.0, gt=0)
    tlm_eps: float = Field(default=1e-6, ge=0)
    prior_dim: int = Field(default=64, gt=0)
    prior_source: str | None = None
    prior_grid: tuple[int, int] = (8, 8)
    prior_images: Literal["sar", "all"] = "sar"
    modulate_deepstack: bool = False
    coords: str | None = None
    min_pixels: int = Field(default=QWEN_MIN_PIXELS, gt=0)
    max_pixels: int = Field(default=QWEN_MAX_PIXELS, gt=0)

    @field_validator("prior_grid")
    @classmethod
    def _grid(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 1 or v[1] < 1:
            raise ValueError(f"prior_grid needs two positive sizes, got {list(v)}")
        return v

    @field_validator("coords")
    @classmethod
    def _coords(cls, v: str | None) -> str | None:
        if v is not None and v not in CONVENTIONS:
            raise ValueError(f"unknown box convention {v!r} (expected one of {', '.join(CONVENTIONS)})")
        return v

    @model_validator(mode="after")
    def _defaults(self) -> SarvlmSettings:
        if self.coords is None:
            self.coords = DEFAULT_COORDS[self.backbone]
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels {self.min_pixels} > max_pixels {self.max_pixels}")
        return self

    @property
    def num_prior_tokens(self) -> int:
        """S, the number of anchor nodes (and of appended tokens per image for ``concat``)."""
        return self.prior_grid[0] * self.prior_grid[1]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict in field order (byte-stable when dumped)."""
        data = self.model_dump(mode="json")
        data["prior_grid"] = list(self.prior_grid)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def parse(cls, data: SarvlmSettings | dict[str, Any] | None, where: str = "settings") -> SarvlmSettings:
        """Validate settings from a dict (or pass through); errors name ``where`` and the field."""
        if data is None:
            return cls()
        if isinstance(data, SarvlmSettings):
            return data
        if not isinstance(data, dict):
            raise ConfigurationError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "<settings>"
            raise ConfigurationError(f"{where}: {field}: {err['msg'].removeprefix('Value error, ')}") from None

    def merged(self, overrides: SarvlmSettings | dict[str, Any] | None, where: str = "settings") -> SarvlmSettings:
        """These settings with ``overrides`` applied (a dict may hold a subset of the fields)."""
        if overrides is None:
            return self
        if isinstance(overrides, SarvlmSettings):
            return overrides
        data = self.to_dict()
        if "backbone" in overrides and overrides["backbone"] != self.backbone:
            raise ConfigurationError(
                f"{where}: backbone: the checkpoint is {self.backbone}, cannot load it as {overrides['backbone']}"
            )
        if "coords" not in overrides and "backbone" in overrides:
            data.pop("coords")
        data.update(overrides)
        return SarvlmSettings.parse(data, where)
