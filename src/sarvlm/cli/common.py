"""Small helpers shared by the CLI verbs."""

from __future__ import annotations

import argparse
from pathlib import Path

from sarvlm.core.errors import SarvlmError


def existing_file(value: str) -> Path:
    """argparse type: a path that must exist and be a file."""
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value}: not a file")
    return path


def parse_pair(value: str, sep: str = "x", name: str = "value") -> tuple[int, int]:
    """Parse ``"8x8"`` into ``(8, 8)``."""
    try:
        a, b = value.lower().split(sep)
        return int(a), int(b)
    except ValueError:
        raise SarvlmError(f"{name} must look like 8{sep}8, got {value!r}") from None


def parse_floats(value: str, count: int, name: str) -> list[float]:
    """Parse a comma-separated list of exactly ``count`` floats."""
    parts = value.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise SarvlmError(f"{name} must be {count} comma-separated numbers, got {value!r}") from None
    if len(numbers) != count:
        raise SarvlmError(f"{name} must be {count} comma-separated numbers, got {len(numbers)}")
    return numbers
