"""Strict readers for benchmark files: every problem names the file, the row and the field."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from secfoundry.core.errors import InputError

csv.field_size_limit(sys.maxsize)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 ({e})", file=str(path)) from e
    except OSError as e:
        raise InputError(f"cannot read ({e})", file=str(path)) from e


def read_tsv(path: Path, required: list[str]) -> list[dict[str, str]]:
    """Rows of a tab-separated file with a header. Rows are numbered from 1 (the first data row,
    line 2 of the file). Missing columns, short or long rows are errors."""
    text = _text(path)
    reader = csv.reader(text.splitlines(keepends=True), delimiter="\t")
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("empty file (no header)", file=str(path)) from None
    header = [h.strip() for h in header]
    for col in required:
        if col not in header:
            raise InputError(f"missing column (header has {header})", file=str(path), row="header", field=col)
    rows: list[dict[str, str]] = []
    try:
        for i, rec in enumerate(reader, start=1):
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue  # blank trailing line
            if len(rec) != len(header):
                missing = header[len(rec)] if len(rec) < len(header) else f"<extra field {len(header) + 1}>"
                raise InputError(f"has {len(rec)} fields, header has {len(header)}", file=str(path), row=i,
                                 field=missing)
            rows.append(dict(zip(header, rec)))
    except csv.Error as e:
        raise InputError(f"malformed TSV ({e})", file=str(path), row=reader.line_num) from e
    return rows


def read_json(path: Path) -> Any:
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}", file=str(path)) from e


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for i, line in enumerate(_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON ({e.msg})", file=str(path), row=i) from e
        if not isinstance(obj, dict):
            raise InputError(f"expected an object, got {type(obj).__name__}", file=str(path), row=i)
        out.append(obj)
    return out


def need_str(rec: dict[str, Any], key: str, path: Path, row: int | str, *, allow_empty: bool = False) -> str:
    """A string field that must be present (and non-empty unless ``allow_empty``)."""
    if key not in rec:
        raise InputError("missing field", file=str(path), row=row, field=key)
    val = rec[key]
    if not isinstance(val, str):
        raise InputError(f"expected a string, got {type(val).__name__}", file=str(path), row=row, field=key)
    if not allow_empty and not val.strip():
        raise InputError("empty value", file=str(path), row=row, field=key)
    return val


def need_letter(val: str, letters: str, path: Path, row: int | str, key: str, *, multi: bool = False,
                allow_empty: bool = False) -> str:
    v = val.strip().upper()
    if allow_empty and not v:
        return v
    ok = bool(v) and all(c in letters for c in v) and (multi or len(v) == 1)
    if not ok:
        raise InputError(f"answer {val!r} is not {'letters' if multi else 'one letter'} among {letters}",
                         file=str(path), row=row, field=key)
    return v


def json_objects(path: Path, rows: Any, where: str = "") -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(index, row label, object) for each element of a JSON list ``rows`` read from ``path``;
    a non-list or a non-object element is an InputError naming the file and row
    (``where`` prefixes the label: ``questions[3]``)."""
    if not isinstance(rows, list):
        raise InputError(f"expected a JSON list{' in ' + where if where else ''}", file=str(path),
                         field=where or None)
    for i, q in enumerate(rows):
        row = f"{where}[{i}]"
        if not isinstance(q, dict):
            raise InputError("expected an object", file=str(path), row=row)
        yield i, row, q
