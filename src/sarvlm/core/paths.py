"""Paths named inside data files, resolved against the dataset root (docs/security.md).

A record's ``image``, ``optical`` or land-cover ``mask`` is data someone else may have written:
``../../etc/passwd`` or ``/home/me/.ssh/id_rsa`` must not be opened just because a JSONL names it.
:func:`resolve_in_root` resolves a path against the dataset root (following symlinks) and refuses
one that ends up outside it, unless the user passed ``--allow-outside-root`` (which the outputs
record).
"""

from __future__ import annotations

from pathlib import Path

from sarvlm.core.errors import InputError

OUTSIDE_ROOT_HINT = "pass --allow-outside-root if you trust this dataset"


def resolve_in_root(
    root: str | Path,
    name: str | Path,
    *,
    allow_outside: bool = False,
    what: str = "image",
    base: str | Path | None = None,
) -> Path:
    """Absolute path of ``name`` (relative to ``base``, default ``root``; or absolute); refuses
    paths leaving ``root``.

    Symlinks are followed before the check, so a link inside the root pointing out of it is refused
    too. The error names the field (``what``), the path as written and the root.
    """
    root_resolved = Path(root).resolve()
    text = str(name)
    if "\x00" in text:
        raise InputError(f"{what}: path {text!r} contains a NUL byte")
    full = ((Path(base).resolve() if base is not None else root_resolved) / Path(name)).resolve()
    if not allow_outside and not full.is_relative_to(root_resolved):
        kind = "absolute path" if Path(name).is_absolute() else "path"
        raise InputError(f"{what}: {kind} {text!r} lies outside the dataset root {root_resolved} ({OUTSIDE_ROOT_HINT})")
    return full
