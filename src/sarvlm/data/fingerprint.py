"""Which dataset a predictions file answers: a fingerprint recorded by ``predict``, checked by ``eval``.

Prediction ids are example ids, and two datasets can share ids (``s0/count/0`` exists in every
build); scoring predictions against a different dataset would then succeed silently with
meaningless numbers. ``predict`` writes ``PREDICTIONS.jsonl.dataset.json`` next to its output
(the data file's SHA-256 and path); ``eval`` refuses a ``--data`` whose fingerprint differs.
Prediction files without the side file (other tools) are scored as before.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sarvlm.core.errors import InputError

SIDE_SUFFIX = ".dataset.json"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def side_file(predictions: str | Path) -> Path:
    predictions = Path(predictions)
    return predictions.with_name(predictions.name + SIDE_SUFFIX)


def record_prediction_source(predictions: str | Path, data: str | Path) -> Path:
    """Write the fingerprint of ``data`` next to ``predictions`` (atomically)."""
    from sarvlm.core.atomic import atomic_open

    path = side_file(predictions)
    with atomic_open(path) as fh:
        json.dump({"data": str(data), "sha256": file_sha256(data)}, fh, indent=2)
        fh.write("\n")
    return path


def check_prediction_source(predictions: str | Path, data: str | Path) -> None:
    """Fail when ``predictions`` were made for a dataset other than ``data`` (by content)."""
    path = side_file(predictions)
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        want = recorded["sha256"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise InputError(f"{path}: unreadable dataset fingerprint (delete it to score without the check)") from None
    if file_sha256(data) != want:
        raise InputError(
            f"{predictions}: made for a different dataset ({recorded.get('data', '?')}, sha256 {str(want)[:12]}…) "
            f"than {data}; predict again on this data (or delete {path.name} if you are sure)"
        )
