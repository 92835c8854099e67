"""Where the image paths of instruction examples are rooted (docs/security.md).

``sarvlm build`` writes example image paths relative to its output directory, usually pointing
into the sample dataset beside it (``../prep/images/x.png``), and records that dataset's folder in
``manifest.json`` as ``image_root`` (and ``options.allow_outside_root`` when the build was told to
accept paths leaving it). Training and prediction resolve example images with
:func:`example_image_root` + :func:`sarvlm.core.paths.resolve_in_root`, so a hand-edited
``train.jsonl`` naming ``/etc/passwd`` is refused like a sample record would be.
"""

from __future__ import annotations

import json
from pathlib import Path

from sarvlm.core.errors import InputError


def example_image_root(jsonl: str | Path, allow_outside: bool = False) -> tuple[Path, bool]:
    """``(root, allow_outside)`` for the images of an examples JSONL.

    The root is the manifest's ``image_root`` (relative to the JSONL's folder) when a build
    manifest sits beside the file, else the JSONL's folder; paths outside it are allowed when the
    caller says so or the manifest records that the build allowed them.
    """
    folder = Path(jsonl).resolve().parent
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return folder, allow_outside
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{manifest}: unreadable build manifest ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{manifest}: build manifest must be a JSON object")
    root = data.get("image_root")
    options = data.get("options") if isinstance(data.get("options"), dict) else {}
    recorded = bool(options.get("allow_outside_root", False))
    if not isinstance(root, str):
        return folder, allow_outside or recorded
    return (folder / root).resolve(), allow_outside or recorded
