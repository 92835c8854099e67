"""KLIP model + pretraining configuration: named configs are data (``configs/<name>.yaml``).

``load_config("tiny-klip")`` reads the shipped YAML; ``load_config("my.yaml")`` a user file.
Unknown keys and bad values fail with one line naming the file and the field.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sarvlm.core.errors import ConfigurationError, NotFoundError
from sarvlm.core.jsonl import format_validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class VisionSpec(_Strict):
    """The ViT image tower (transformers ``ViTModel``)."""

    image_size: int = Field(224, gt=0)
    patch_size: int = Field(16, gt=0)
    # SAR is single-channel: 1 feeds the dB image as is; 3 repeats it (for RGB checkpoints kept as 3).
    num_channels: int = Field(1, ge=1, le=3)
    hidden_size: int = Field(768, gt=0)
    num_hidden_layers: int = Field(12, gt=0)
    num_attention_heads: int = Field(12, gt=0)
    intermediate_size: int = Field(3072, gt=0)
    # a local Hugging Face checkpoint directory (ViTModel, or the vision part of a BLIP checkpoint)
    init_from: str | None = None

    @model_validator(mode="after")
    def _shapes(self) -> VisionSpec:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        return self


class TextSpec(_Strict):
    """The BERT-style text tower (transformers ``BertLMHeadModel``, cross-attention in every layer)."""

    vocab_size: int = Field(30524, gt=16)  # the trained/loaded tokenizer decides the final size
    hidden_size: int = Field(768, gt=0)
    num_hidden_layers: int = Field(12, gt=0)
    num_attention_heads: int = Field(12, gt=0)
    intermediate_size: int = Field(3072, gt=0)
    max_length: int = Field(160, gt=8)
    # transformers attention kernel: "sdpa" (fused, the default) or "eager" (reference; slower)
    attention: Literal["sdpa", "eager"] = "sdpa"
    # a local Hugging Face BERT-style checkpoint directory with its tokenizer (e.g. all-MiniLM-L6-v2)
    init_from: str | None = None

    @model_validator(mode="after")
    def _shapes(self) -> TextSpec:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        return self


class TrainSpec(_Strict):
    """Pretraining hyper-parameters (paper 004 §4.1 for base-klip)."""

    batch_size: int = Field(32, gt=1)
    lr: float = Field(3e-4, gt=0)
    warmup_lr: float = Field(1e-6, ge=0)
    warmup_steps: int = Field(3000, ge=0)
    min_lr: float = Field(1e-6, ge=0)
    lr_decay_rate: float = Field(0.9, gt=0, le=1)  # per epoch, after warm-up
    weight_decay: float = Field(0.05, ge=0)
    epochs: int = Field(36, gt=0)
    checkpoint_every: int = Field(500, gt=0)  # steps between resumable checkpoints
    loss_weights: dict[str, float] = Field(default_factory=lambda: {"itc": 1.0, "itm": 1.0, "mlm": 1.0})
    # (fragment_itc, default weight 0 = BLIP: image vs the batch's fragments of each field; losses.fragment_itc_loss)
    # Fragment-level signals (sarvlm.foundation.fragments; off = BLIP): each training text keeps each
    # caption fragment with this probability (1.0 = whole texts), and ITM gets one extra negative per
    # text with one fragment swapped for another text's fragment of the same field.
    fragment_keep: float = Field(1.0, gt=0, le=1)
    itm_fragment_negatives: bool = False

    @model_validator(mode="after")
    def _weights(self) -> TrainSpec:
        bad = set(self.loss_weights) - {"itc", "itm", "mlm", "fragment_itc"}
        if bad:
            raise ValueError(f"loss_weights: unknown loss {sorted(bad)[0]!r} (itc, itm, mlm, fragment_itc)")
        return self


class ScioSpec(_Strict):
    """SCIO (Algorithm 1) thresholds. See docs/foundation.md for the rationale of the defaults."""

    # A fragment is dropped when removing it lowers the ITC loss by more than itc_margin
    # (paper Eq. 10: ΔL_ITC < 0) AND raises the ITM match probability by more than itm_margin (Eq. 11: Δs > 0).
    itc_margin: float = 0.0
    itm_margin: float = 0.0
    # Screening statistic: "leave_one_out" = the paper's Eq. 10/11 (ΔL_ITC of the text without the fragment,
    # Δs_ITM); "alternatives" = proofreading against the same field's other values in the data set: drop
    # when another value's fragment matches the image better by more than itc_margin in ITC similarity
    # and (use_itm) by more than itm_margin in ITM probability. Rationale: docs/foundation.md (SCIO).
    rule: Literal["leave_one_out", "alternatives"] = "leave_one_out"
    use_itm: bool = True
    # phase lengths as fractions of the run (the paper: 12 + 12 + 12 epochs)
    phases: list[float] = Field(default_factory=lambda: [1 / 3, 1 / 3, 1 / 3])
    chunk: int = Field(256, gt=0)  # texts scored per forward pass

    @model_validator(mode="after")
    def _phases(self) -> ScioSpec:
        if len(self.phases) != 3 or any(p <= 0 for p in self.phases):
            raise ValueError("phases must be three positive fractions")
        return self


class KlipConfig(_Strict):
    """Everything that defines a KLIP model and its pretraining."""

    name: str = "custom"
    vision: VisionSpec = Field(default_factory=VisionSpec)
    text: TextSpec = Field(default_factory=TextSpec)
    embed_dim: int = Field(256, gt=0)  # shared ITC space
    queue_size: int = Field(57600, gt=0)
    momentum: float = Field(0.995, gt=0, lt=1)
    temperature: float = Field(0.07, gt=0)
    # ITC feature of each tower: the [CLS] token (BLIP, with pretrained towers) or the mean of the
    # tokens (from-scratch towers: their [CLS] output starts identical for every input; see docs/foundation.md)
    image_pooling: Literal["cls", "mean"] = "cls"
    text_pooling: Literal["cls", "mean"] = "cls"
    alpha: float = Field(0.4, ge=0, le=1)  # weight of the momentum soft targets (ramped up over epoch 1)
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    # SAR radiometry: float intensities are shown in dB inside this window; uint8 images as is.
    db_window: list[float] = Field(default_factory=lambda: [-30.0, 10.0])
    train: TrainSpec = Field(default_factory=TrainSpec)
    scio: ScioSpec = Field(default_factory=ScioSpec)

    @model_validator(mode="after")
    def _queue(self) -> KlipConfig:
        if self.queue_size % self.train.batch_size:
            raise ValueError(
                f"queue_size {self.queue_size} must be a multiple of train.batch_size {self.train.batch_size}"
            )
        if len(self.db_window) != 2 or self.db_window[0] >= self.db_window[1]:
            raise ValueError("db_window must be [low_dB, high_dB] with low < high")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


NAMED_CONFIGS = ("tiny-klip", "tiny-klip-fragments", "base-klip")


def config_from_dict(data: Any, where: str) -> KlipConfig:
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: expected a mapping of config fields")
    try:
        return KlipConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: " + format_validation_error(exc, None).removeprefix("record: ")) from None


def _merged(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``, section by section (lists and values are replaced, not merged)."""
    out = dict(base)
    for key, value in child.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> KlipConfig:
    """A named config (``tiny-klip``, ``tiny-klip-fragments``, ``base-klip``) or a YAML/JSON file;
    ``overrides`` are dotted keys. A config with ``base: NAME_OR_FILE`` changes only what it lists."""
    data, where = _load_raw(name_or_path, set())
    for key, value in (overrides or {}).items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigurationError(f"--set {key}: {p!r} is not a section")
        node[leaf] = value
    return config_from_dict(data, where)


def _load_raw(name_or_path: str | Path, seen: set[str]) -> tuple[dict[str, Any], str]:
    text_name = str(name_or_path)
    if text_name in NAMED_CONFIGS:
        where = f"config {text_name}"
        raw = resources.files("sarvlm.foundation").joinpath("configs", f"{text_name}.yaml").read_text("utf-8")
    else:
        path = Path(text_name)
        if not path.is_file():
            raise NotFoundError(f"config {text_name!r}: no such named config ({', '.join(NAMED_CONFIGS)}) or file")
        where = str(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path}: cannot read ({exc})") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{where}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: expected a mapping of config fields")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigurationError(f"{where}: base must name a config or a file")
        if base not in NAMED_CONFIGS and not Path(base).is_absolute() and text_name not in NAMED_CONFIGS:
            base = str(Path(text_name).parent / base)  # a file's base is relative to that file
        if base in seen | {text_name}:
            raise ConfigurationError(f"{where}: base configs form a cycle through {base!r}")
        parent, _ = _load_raw(base, seen | {text_name})
        data = _merged(parent, data)
    return data, where
