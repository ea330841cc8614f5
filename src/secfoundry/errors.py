"""Errors that name where bad input came from (file, row/entry, field)."""

from __future__ import annotations


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
