"""Atomic outputs: write to a temporary sibling, then rename into place.

A crash or a user error never leaves a half-written file or directory where the
final output should be.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from sarvlm.core.errors import InputError, SarvlmError


def _create_temp(parent: Path, prefix: str, suffix: str = "", is_dir: bool = False) -> Path:
    """Create a new, uniquely named file or directory in ``parent`` and return its path.

    Created with 0666/0777 so the kernel applies the process umask: the mode a plain
    ``open()``/``mkdir()`` would give. (``mkstemp``/``mkdtemp`` use 0600/0700, which would make
    outputs unreadable to the user's group; reading the umask to fix that up afterwards means
    changing it for the whole process for a moment.)
    """
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            if is_dir:
                os.mkdir(candidate, 0o777)
            else:
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"{parent}: cannot create a temporary output ({exc.strerror or exc})") from None
        return candidate
    raise SarvlmError(f"{parent}: cannot find a free temporary name")


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) or fail with a one-line error naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create output directory ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{path}: output directory is not writable")
    return path


def _temp_prefix(path: Path) -> str:
    """Temporary siblings carry the writer's pid, so a later run can tell a dead writer's leftovers."""
    return f".{path.name}.tmp-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def clean_stale_temps(path: str | Path) -> list[Path]:
    """Remove temporary siblings of ``path`` left by writers that died (kill -9, power loss).

    Only names this module creates (``.NAME.tmp-PID-*``) whose process no longer runs are removed;
    a concurrent live writer's temp is left alone. Returns what was removed.
    """
    path = Path(path)
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}.tmp-"
    for cand in path.parent.glob(f"{glob.escape(prefix)}*"):
        pid_text = cand.name[len(prefix) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        if cand.is_dir() and not cand.is_symlink():
            shutil.rmtree(cand, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                cand.unlink()
        removed.append(cand)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file keeps the final suffix (``suffix`` overrides it) so that
    format-sniffing writers such as rasterio pick the right driver.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    clean_stale_temps(path)
    tmp_path = _create_temp(
        path.parent, _temp_prefix(path), suffix if suffix is not None else path.suffix or ".tmp", is_dir=False
    )
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Open a temporary file for writing; it replaces ``path`` only if the block succeeds."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding, newline="\n" if encoding else None) as fh:
        yield fh


def check_output_dir(path: str | Path, overwrite: bool = False) -> None:
    """Refuse an output directory that :func:`atomic_dir` would refuse: a file, or a non-empty
    directory without ``overwrite``. Cheap, so callers can check before slow work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise InputError(f"{path}: output directory exists and is not empty (use --overwrite)")


@contextlib.contextmanager
def removed_if_left_empty(path: str | Path) -> Iterator[Path]:
    """Directories the block creates at ``path`` (and missing parents) go again if it fails and
    leaves them empty; anything that already existed, or holds files (a checkpoint to resume
    from), stays."""
    path = Path(path).absolute()
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        yield path
    except BaseException:
        for p in missing:  # innermost first; rmdir removes empty directories only
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` when the block succeeds.

    If ``path`` exists and ``overwrite`` is false, fail before doing any work.
    """
    path = Path(path)
    check_output_dir(path, overwrite)
    ensure_writable_dir(path.parent)
    clean_stale_temps(path)
    tmp = _create_temp(path.parent, _temp_prefix(path), is_dir=True)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
