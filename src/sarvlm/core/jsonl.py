"""JSONL reading and writing shared by every record type (samples, examples, predictions).

Errors name the file, the line, the record id and the field; writes are atomic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sarvlm.core.errors import InputError, NotFoundError, SarvlmError

M = TypeVar("M", bound=BaseModel)


def format_validation_error(exc: ValidationError, record_id: str | None) -> str:
    """Turn a pydantic error into ``record 'id': field 'a.b.0': message``."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "<record>"
    msg = err["msg"].removeprefix("Value error, ")
    who = f"record {record_id!r}" if record_id else "record"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{who}: field {field!r}: {msg}{more}"


def parse_record(data: dict[str, Any] | str, model: type[M], where: str = "") -> M:
    """Validate one record (dict or JSON text) as ``model``; errors name ``where``, the id and the field."""
    prefix = f"{where}: " if where else ""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise InputError(f"{prefix}malformed JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise InputError(f"{prefix}expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        rid = data.get("id") if isinstance(data.get("id"), str) else None
        raise InputError(prefix + format_validation_error(exc, rid)) from None


def read_jsonl(path: str | Path, model: type[M]) -> Iterator[M]:
    """Stream records of one type from a JSONL file; blank lines are skipped."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    try:
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    with fh:
        lineno = 0
        try:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    yield parse_record(line, model, where=f"{path}:{lineno}")
        except UnicodeDecodeError:
            raise SarvlmError(f"{path}:{lineno + 1}: not UTF-8 text") from None


def write_jsonl(path: str | Path, items: Iterable[BaseModel]) -> int:
    """Write records (anything with ``to_json()``) as JSONL atomically. Returns the count."""
    from sarvlm.core.atomic import atomic_open

    n = 0
    with atomic_open(path) as fh:
        for item in items:
            fh.write(item.to_json())  # type: ignore[attr-defined]
            fh.write("\n")
            n += 1
    return n
