"""Progress display for long work (rich), quiet when not on a terminal or under CI.

Bars show the count done, the rate (items/s) and the time left (ETA).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI") and not os.environ.get("SARVLM_NO_PROGRESS")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar on a terminal, plainly otherwise."""
    if not progress_enabled():
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with _progress() as bar:
        yield from bar.track(items, total=total, description=description)


def _progress() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:.3g}/s")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        transient=True,
    )


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A bar for work that reports completion counts itself (e.g. parallel blocks): yields
    ``advance(n_done)``; a no-op off a terminal."""
    if not enabled or not progress_enabled():
        yield lambda done: None
        return
    with _progress() as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.update(task, completed=done)
