"""User-facing errors.

Anything caused by the user's input (a file, a record, a field, an option) raises
:class:`SarvlmError` with a message that names the culprit. The CLI prints it as
one line and exits non-zero; no traceback is shown for these.
"""

from __future__ import annotations

from pathlib import Path


class SarvlmError(Exception):
    """An error in the user's input, reported as one line by the CLI."""

    exit_code = 2


def file_error(path: str | Path, problem: str) -> SarvlmError:
    """Build an error that names a file and the problem with it."""
    return SarvlmError(f"{path}: {problem}")
