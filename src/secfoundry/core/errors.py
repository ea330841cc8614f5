"""Errors that name where bad input came from (file, row/entry, field), and the Quarantine
that collects bad entries so that the rest of a job goes on."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Malformed input. The message always names the file and, when known, the row and field."""

    def __init__(self, message: str, *, file: str | None = None, row: int | str | None = None,
                 field: str | None = None):
        self.file, self.row, self.field = file, row, field
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


def read_input_file(path: str | Path, limit: int) -> bytes:
    """The bytes of an input file, or an :class:`InputError` naming it when it is missing or
    larger than ``limit`` bytes."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", file=str(p))
    size = p.stat().st_size
    if size > limit:
        raise InputError(f"file is {size:,} bytes; the limit is {limit:,}", file=str(p))
    return p.read_bytes()


class Quarantine:
    """Collects bad input (file, entry, error) and optionally appends it to a JSONL file."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.items: list[dict[str, Any]] = []

    def add(self, source: str, file: str, entry: str | int | None, error: str | BaseException) -> None:
        item = {"source": source, "file": str(file), "entry": entry, "error": str(error), "time": time.time()}
        self.items.append(item)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(item) + "\n")

    def __len__(self) -> int:
        return len(self.items)
