"""Training recipes: what each stage trains, on which tasks, with which hyper-parameters.

A recipe is data (YAML shipped in ``sarvlm/training/recipes/``) validated by the
pydantic schema below. Command-line overrides (``--lr``, ``--set stage2.lora.r=16``)
are applied to the parsed YAML and validated against the same schema, so an unknown
key or a bad value fails with one line naming it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sarvlm.core.errors import ConfigurationError, NotFoundError, SarvlmError

FUSIONS = ("tlm", "sum", "concat", "none")
LORA_SCOPES = ("language_model", "merger", "vision")
LoraScope = Literal["language_model", "merger", "vision"]


def _language_model_only() -> list[LoraScope]:
    return ["language_model"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSpec(_Strict):
    """A LoRA adapter: rank, scaling, which linear layers, and in which parts of the model."""

    enabled: bool = False
    r: int = Field(8, gt=0)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    # "all-linear" or module-name suffixes such as [q_proj, k_proj, v_proj, o_proj]
    targets: Literal["all-linear"] | list[str] = "all-linear"
    # language_model: the LLM; merger: the vision-language adapter; vision: the vision tower
    scope: list[LoraScope] = Field(default_factory=_language_model_only)

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: Any) -> Any:
        if isinstance(v, list) and (not v or not all(isinstance(t, str) and t.strip() for t in v)):
            raise ValueError("targets must be 'all-linear' or a non-empty list of module names")
        return v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("scope must name at least one of " + ", ".join(LORA_SCOPES))
        return list(dict.fromkeys(v))


class StageSpec(_Strict):
    """One training stage. Everything not listed as trained stays frozen."""

    name: str
    description: str = ""
    tasks: list[str]  # task names of the dataset this stage trains on; ["*"] = all
    train_fusion: bool = False  # the geo-prior fusion module (TLM / sum / concat) trains in full
    train_merger: bool = False  # the vision-language adapter trains in full
    full_model: bool = False  # full fine-tuning: every parameter trains (exclusive with LoRA)
    lora: LoraSpec = Field(default_factory=LoraSpec)
    lr: float = Field(gt=0)
    epochs: float = Field(gt=0)
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = Field(1, gt=0)
    grad_accum: int = Field(1, gt=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    optim: Literal["adamw_torch", "adamw_torch_fused"] = "adamw_torch"
    max_grad_norm: float = Field(1.0, gt=0)
    logging_steps: int = Field(10, gt=0)
    save_steps: int = Field(500, gt=0)
    save_total_limit: int | None = Field(2, gt=0)
    eval: bool = False  # evaluate the loss on val.jsonl at the end of each epoch

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: list[str]) -> list[str]:
        if not v or not all(isinstance(t, str) and t.strip() for t in v):
            raise ValueError("tasks must be a non-empty list of task names (or ['*'])")
        return v

    @model_validator(mode="after")
    def _full_excludes_lora(self) -> StageSpec:
        if self.full_model and self.lora.enabled:
            raise ValueError("full_model trains every parameter; it cannot be combined with lora.enabled")
        return self

    @property
    def trains_anything(self) -> bool:
        return self.lora.enabled or self.train_fusion or self.train_merger or self.full_model


class Recipe(_Strict):
    """A complete training recipe (one or two stages)."""

    name: str
    description: str = ""
    paper: str = ""
    backbone: str = "qwen2.5-vl"  # the backbone the paper used (informational)
    fusion: Literal["tlm", "sum", "concat", "none"] = "none"
    needs_priors: bool = False
    seed: int = 0
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    gradient_checkpointing: bool = False
    workers: int | None = Field(None, ge=0)  # dataloader processes; None = auto (sarvlm.training.loader)
    max_length: int = Field(2048, gt=0)  # longer examples are dropped and counted, never truncated
    stages: list[StageSpec]

    @model_validator(mode="after")
    def _check(self) -> Recipe:
        if not self.stages:
            raise ValueError("a recipe needs at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        if self.needs_priors and self.fusion == "none":
            raise ValueError("needs_priors is true but fusion is 'none' (nothing would use the priors)")
        return self

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise ConfigurationError(
            f"recipe {self.name!r}: no stage {name!r} (stages: {', '.join(s.name for s in self.stages)})"
        )

    def to_yaml(self) -> str:
        """The resolved recipe as YAML (fixed key order: byte-stable)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _recipe_dir() -> Path:
    return Path(str(resources.files("sarvlm.training") / "recipes"))


def list_recipes() -> dict[str, str]:
    """Names of the shipped recipes with their one-line descriptions."""
    out = {}
    for path in sorted(_recipe_dir().glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out[path.stem] = " ".join(str(data.get("description", "")).split())
    return out


def _format_error(exc: ValidationError, where: str, data: dict[str, Any] | None = None) -> str:
    err = exc.errors()[0]
    parts = [str(p) for p in err["loc"]]
    # "stages.1.lr" reads better as "stage2.lr", the name --set uses
    if len(parts) >= 2 and parts[0] == "stages" and parts[1].isdigit() and data is not None:
        stages = data.get("stages") or []
        idx = int(parts[1])
        if idx < len(stages) and isinstance(stages[idx], dict) and stages[idx].get("name"):
            parts = [str(stages[idx]["name"])] + parts[2:]
    loc = ".".join(parts) or "<recipe>"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{where}: {loc}: {msg}"


def _read_recipe_data(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise NotFoundError(f"{path}: no such recipe file")
        where = str(path)
    else:
        path = _recipe_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(list_recipes())
            raise NotFoundError(
                f"unknown recipe {str(name_or_path)!r} (shipped recipes: {known}; or pass a .yaml file)"
            )
        where = f"recipe {name_or_path}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{where}: malformed YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: expected a mapping at the top level")
    return data, where


def load_recipe(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load a shipped recipe by name (``fusar-gpt``) or a YAML file, apply ``overrides`` and validate.

    ``overrides`` maps dotted keys to values, e.g. ``{"stage2.lora.r": 16, "fusion": "sum"}``;
    a stage is addressed by its name. Values may be strings; they are parsed as YAML scalars
    (lists as ``a,b,c`` or ``[a, b]``) and validated by the schema.
    """
    data, where = _read_recipe_data(name_or_path)
    for key, value in (overrides or {}).items():
        _apply_override(data, key, value, where)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(_format_error(exc, where, data)) from None


def _parse_value(value: Any, field: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    wants_list = field is not None and "list" in str(field.annotation)
    if wants_list and not text.startswith("[") and text not in ("all-linear",):
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return value
    if parsed is None:
        return None if text.lower() in ("null", "none", "~") else text
    return parsed


def _apply_override(data: dict[str, Any], key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    if not all(parts):
        raise ConfigurationError(f"--set {key}: malformed key")
    node: dict[str, Any] = data
    schema: type[BaseModel] = Recipe
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if (
            schema is Recipe
            and i == 0
            and any(isinstance(s, dict) and s.get("name") == part for s in data.get("stages", []))
        ):
            if last:
                raise ConfigurationError(f"--set {key}: a stage needs a field, e.g. {part}.lr")
            node = next(s for s in data["stages"] if isinstance(s, dict) and s.get("name") == part)
            schema = StageSpec
            continue
        field = schema.model_fields.get(part)
        if field is None:
            stages = ", ".join(s.get("name", "?") for s in data.get("stages", []) if isinstance(s, dict))
            hint = f" (stages: {stages})" if schema is Recipe else ""
            raise ConfigurationError(f"--set {key}: unknown key {part!r} in {schema.__name__}{hint}")
        if last:
            node[part] = _parse_value(value, field)
            return
        sub = field.annotation
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            raise ConfigurationError(f"--set {key}: {part!r} has no sub-keys")
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigurationError(f"{where}: {part}: expected a mapping")
        schema = sub


def apply_common_overrides(
    recipe: Recipe,
    *,
    stages: list[str] | None = None,
    lr: float | None = None,
    epochs: float | None = None,
    max_steps: int | None = None,
    batch_size: int | None = None,
    grad_accum: int | None = None,
    lora_r: int | None = None,
    lora_alpha: float | None = None,
    seed: int | None = None,
    gradient_checkpointing: bool | None = None,
    workers: int | None = None,
) -> Recipe:
    """Apply the CLI's shortcut flags: per-stage values go to every stage in ``stages`` (default: all)."""
    # a flag the user typed is never silently ignored: -3 steps would otherwise mean "use epochs"
    if max_steps is not None and max_steps < 1:
        raise SarvlmError(f"--max-steps: must be a positive integer, got {max_steps}")
    data = recipe.model_dump()
    targets = set(stages) if stages else {s["name"] for s in data["stages"]}
    for stage in data["stages"]:
        if stage["name"] not in targets:
            continue
        for key, value in (
            ("lr", lr),
            ("epochs", epochs),
            ("max_steps", max_steps),
            ("batch_size", batch_size),
            ("grad_accum", grad_accum),
        ):
            if value is not None:
                stage[key] = value
        if lora_r is not None:
            stage["lora"]["r"] = lora_r
        if lora_alpha is not None:
            stage["lora"]["alpha"] = lora_alpha
    for key, value in (("seed", seed), ("gradient_checkpointing", gradient_checkpointing), ("workers", workers)):
        if value is not None:
            data[key] = value
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(_format_error(exc, f"recipe {recipe.name}", data)) from None


def parse_set_options(items: list[str] | None) -> dict[str, str]:
    """``["stage2.lora.r=16", "fusion=sum"]`` → ``{"stage2.lora.r": "16", "fusion": "sum"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--set {item!r}: expected key=value")
        out[key.strip()] = value
    return out
