"""The run directory: its layout, its identity, and the rules for reusing it.

::

    RUN_DIR/
      run.yaml                 identity: resolved recipe, model, data, priors (written first)
      stage1/                  one directory per stage (the recipe's stage names)
        config.yaml            the resolved stage + the Trainer arguments actually used
        data.json              kept/dropped example counts per split (over-long, other task, ...)
        checkpoints/           Hugging Face Trainer checkpoints (what --resume continues from)
        log.csv, loss.png      training log and loss curve (+ tensorboard/ if installed)
        adapter/               PEFT LoRA adapter (stages with LoRA)
        trained_modules.safetensors   modules trained in full (fusion / adapter), base-model names
        merged/                full merged model of this stage (only with --merge)
        result.json            written last: the stage is complete
      final/                   the merged model after the last stage (``load_model``/``predict`` load it)

A directory that holds a different run (other recipe, model, data or priors) is
refused unless ``overwrite``; a stage that was interrupted is continued only with
``resume``; completed stages are reused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from sarvlm.core.atomic import atomic_open, ensure_writable_dir
from sarvlm.core.errors import InputError

RUN_FILE = "run.yaml"
RESULT_FILE = "result.json"
CHECKPOINTS = "checkpoints"


def run_identity(recipe_yaml: str, model: str, data: str, priors: str | None) -> dict[str, Any]:
    """What makes two runs the same run (stage selection and resume flags excluded)."""
    return {
        "model": model,
        "data": data,
        "priors": priors,
        "recipe": yaml.safe_load(recipe_yaml),
    }


def prepare_run_dir(out: Path, identity: dict[str, Any], *, overwrite: bool) -> Path:
    """Create or reuse ``out`` following the rules above; writes ``run.yaml`` for a new run.

    Whether an interrupted stage may continue (``--resume``) is decided per stage by the caller.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    has_content = out.is_dir() and any(out.iterdir())
    if has_content and overwrite:
        shutil.rmtree(out)
        has_content = False
    if has_content:
        run_file = out / RUN_FILE
        if not run_file.is_file():
            raise InputError(f"{out}: output directory is not empty and holds no sarvlm run (use --overwrite)")
        try:
            existing = yaml.safe_load(run_file.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raise InputError(f"{run_file}: malformed run file (use --overwrite)") from None
        if existing != identity:
            diff = sorted(k for k in identity if (existing or {}).get(k) != identity[k])
            raise InputError(
                f"{out}: holds a different run (differs in: {', '.join(diff) or 'format'}); use --overwrite or another --out"
            )
        return out
    ensure_writable_dir(out)
    with atomic_open(out / RUN_FILE) as fh:
        fh.write(yaml.safe_dump(identity, sort_keys=False, allow_unicode=True))
    return out


def stage_complete(stage_dir: Path) -> bool:
    return (stage_dir / RESULT_FILE).is_file()


def last_checkpoint(stage_dir: Path) -> Path | None:
    """The newest *complete* Trainer checkpoint of a stage, if any.

    The Trainer writes ``trainer_state.json`` last, so a checkpoint cut short by a crash
    (no state file) is skipped rather than resumed from.
    """
    ckpt_dir = stage_dir / CHECKPOINTS
    if not ckpt_dir.is_dir():
        return None
    complete = []
    for path in ckpt_dir.iterdir():
        name = path.name
        if (
            path.is_dir()
            and name.startswith("checkpoint-")
            and name[11:].isdigit()
            and (path / "trainer_state.json").is_file()
        ):
            complete.append((int(name[11:]), path))
    return max(complete)[1] if complete else None


def stage_started(stage_dir: Path) -> bool:
    return stage_dir.is_dir() and any(stage_dir.iterdir())


def read_result(stage_dir: Path) -> dict[str, Any]:
    return json.loads((stage_dir / RESULT_FILE).read_text(encoding="utf-8"))


def discard_unstarted(run_dir: Path, stage_dir: Path, *, new_run: bool) -> None:
    """After a stage failed: remove what it wrote if it never saved a checkpoint (there is nothing
    to resume), and the ``run.yaml`` of a run this call created when no stage holds anything.
    So a run that failed on bad input does not block the corrected rerun."""
    if stage_complete(stage_dir) or last_checkpoint(stage_dir) is not None:
        return
    shutil.rmtree(stage_dir, ignore_errors=True)
    if not new_run or not run_dir.is_dir():
        return
    others = [p for p in run_dir.iterdir() if p.name != RUN_FILE]
    if not others:
        (run_dir / RUN_FILE).unlink(missing_ok=True)
        run_dir.rmdir()
