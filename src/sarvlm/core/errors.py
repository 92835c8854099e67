"""User-facing errors: a small hierarchy library callers can catch separately.

Anything caused by the user's input (a file, a record, a field, an option) raises a
:class:`SarvlmError` subclass with a message that names the culprit. The CLI prints it
as one line (``sarvlm: error: ...``) and exits non-zero; no traceback is shown.

==========================  =====================================================
class                        raised when
==========================  =====================================================
:class:`InputError`          a file, record, field or option holds bad data
:class:`NotFoundError`       a named file, directory, model, task or id is absent
:class:`ConfigurationError`  a recipe/config/setting is invalid or inconsistent
:class:`MissingDependency`   an optional extra is not installed (says how to install)
==========================  =====================================================

``SarvlmError`` itself stays raisable for errors that fit none of these.
"""

from __future__ import annotations

from pathlib import Path


class SarvlmError(Exception):
    """An error in the user's input or setup, reported as one line by the CLI."""

    exit_code = 2


class InputError(SarvlmError):
    """Bad data in a file, record, field or command-line option (the message names it)."""


class NotFoundError(SarvlmError):
    """Something the user named (file, directory, model, task, record id) does not exist."""


class ConfigurationError(SarvlmError):
    """A recipe, config file or setting is invalid or contradicts another."""


class MissingDependency(SarvlmError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(
            f"the optional package {package!r} is not installed{what}; "
            f"install it with: pip install -e '.[{extra}]' (from the sarvlm checkout)"
        )
        self.package = package
        self.extra = extra


def file_error(path: str | Path, problem: str) -> InputError:
    """Build an error that names a file and the problem with it."""
    return InputError(f"{path}: {problem}")
