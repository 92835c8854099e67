"""Resumable pipeline steps.

Each step produces one directory under the demo root. A finished step carries a marker with the
hash of its parameters (which include the hashes of the steps it consumes); a re-run reuses a
step whose marker matches and recomputes it otherwise. Ordinary steps build into a temporary
sibling and are renamed into place, so an interrupted step leaves nothing half-written; steps
that resume by themselves (training, prediction) run in place and are marked done at the end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

MARKER = ".sarvlm-step.json"
STARTED = ".started.json"  # in-place steps: ROOT/.<name>.started.json holds the key they were started with


@dataclass
class StepRunner:
    """Runs named steps under ``root``; a step is skipped when its marker matches its parameters."""

    root: Path
    console: Console
    fresh: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    _keys: dict[str, str] = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter)

    def key_of(self, name: str) -> str:
        """The parameter hash of a step that already ran in this pipeline."""
        return self._keys[name]

    def _marker(self, path: Path) -> dict[str, Any]:
        try:
            return json.loads((path if path.suffix == ".json" else path / MARKER).read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def run(
        self, name: str, params: dict[str, Any], fn: Callable[[Path], Any], *, title: str, in_place: bool = False
    ) -> Path:
        """Produce ``root/name`` with ``fn(directory)`` unless it is already done with the same params."""
        out = self.root / name
        key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self._keys[name] = key
        marker = self._marker(out)
        if not self.fresh and marker.get("key") == key:
            self.console.print(f"[dim]✓ {title}: reused {out}[/dim]")
            self.timings[name] = float(marker.get("seconds", 0.0))  # what it took when it was computed
            return out
        if in_place:
            # Resumes inside itself; a different parameter set (or --fresh) starts clean: a finished
            # step with another key, or an interrupted one started with another key.
            started = self.root / f".{name}{STARTED}"  # beside it: a run directory must hold only the run
            if out.exists() and (self.fresh or (out / MARKER).exists() or self._marker(started).get("key") != key):
                shutil.rmtree(out)
            started.write_text(json.dumps({"key": key}))
            work = out
        else:
            work = self.root / f".{name}.partial"
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        self.console.print(f"▶ {title} …")
        fn(work)
        elapsed = time.perf_counter() - start
        (work / MARKER).write_text(
            json.dumps({"key": key, "params": params, "seconds": round(elapsed, 2)}, sort_keys=True, default=str)
        )
        if not in_place:
            if out.exists():
                shutil.rmtree(out)
            work.rename(out)
        self.timings[name] = elapsed
        total = time.perf_counter() - self._t0
        self.console.print(f"✓ {title} [dim]({elapsed:.1f} s; {total:.0f} s elapsed)[/dim]")
        return out
