"""Lines of a (plain or gzipped) file as Arrow blocks, with no per-line Python work.

A block is ~``BLOCK_BYTES`` of whole lines: numpy finds the newlines, drops them (and the ``\\r``
before them, as :func:`.inputs.iter_lines` does), and the remaining bytes become one Arrow string
array whose offsets are the line boundaries; line numbers are a range. Arrow checks UTF-8 for the
whole block at once; only a block that fails is decoded line by line (bad bytes replaced, the row
kept, one error per line — the same rule and message as the Python parsers).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from secfoundry.apps.soc.schemas import RowError

BLOCK_BYTES = 64 << 20


@dataclass
class Block:
    table: Any  # pyarrow.Table(line int64, raw string); empty lines included (length 0)
    first_line: int
    errors: list[RowError] = field(default_factory=list)


def _split(buf: bytes, first_line: int, final: bool) -> tuple[Any, int, int]:
    """(arrow table of the whole lines in ``buf``, lines, bytes consumed)."""
    import pyarrow as pa

    a = np.frombuffer(buf, dtype=np.uint8)
    nl = np.flatnonzero(a == 10)
    consumed = int(nl[-1]) + 1 if len(nl) else 0
    ends = nl
    if final and consumed < len(a):  # last line without a newline
        ends = np.append(nl, len(a))
        consumed = len(a)
    n = len(ends)
    if n == 0:
        return None, 0, 0
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl[: n - 1] + 1
    keep = np.ones(consumed, dtype=bool)
    keep[nl[nl < consumed]] = False
    stop = ends.astype(np.int64)  # exclusive end of each line's content
    while True:  # strip trailing CRs (rstrip(b"\r\n"))
        cr = (stop > starts) & (a[np.maximum(stop - 1, 0)] == 13)
        if not cr.any():
            break
        stop[cr] -= 1
        keep[stop[cr]] = False
    lengths = stop - starts
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = a[:consumed][keep]
    raw = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    lines = pa.array(np.arange(first_line, first_line + n, dtype=np.int64))
    return pa.table({"line": lines, "raw": raw}), n, consumed


def _repair(table: Any, name: str) -> tuple[Any, list[RowError]]:
    """A block with invalid UTF-8: decode line by line, bad bytes replaced (row kept, reported)."""
    import pyarrow as pa

    raws = table.column("raw").cast(pa.large_binary()).to_pylist()
    lines = table.column("line").to_pylist()
    out: list[str] = []
    errors: list[RowError] = []
    for n, b in zip(lines, raws):
        try:
            out.append(b.decode("utf-8"))
        except UnicodeDecodeError as e:
            text = b.decode("utf-8", errors="replace")
            out.append(text)
            errors.append(RowError(file=name, line=n, error=f"not valid UTF-8 at byte {e.start}: bytes replaced "
                                                            "(row kept)", snippet=text[:120]))
    return pa.table({"line": table.column("line"), "raw": pa.array(out, type=pa.large_string())}), errors


def _read(f: Any, n: int) -> tuple[bytes, Exception | None]:
    """Up to ``n`` bytes; a damaged stream returns what it gave before failing, and the error."""
    parts: list[bytes] = []
    got = 0
    try:
        while got < n:
            b = f.read1(min(n - got, 1 << 22))
            if not b:
                break
            parts.append(b)
            got += len(b)
    except (EOFError, OSError) as e:
        return b"".join(parts), e
    return b"".join(parts), None


def iter_blocks(path: str, name: str, block_bytes: int = BLOCK_BYTES) -> Iterator[Block]:
    """Blocks of whole lines. A truncated ``.gz`` keeps its whole lines read before the damage and
    ends with an error block, as the line reader of the Python path does."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    carry = b""
    line = 1
    with opener(path, "rb") as f:  # type: ignore[operator]
        while True:
            chunk, err = _read(f, block_bytes)
            final = not chunk and err is None
            buf = carry + chunk if carry else chunk
            if not buf and err is None:
                return
            table, n, used = _split(buf, line, final)
            carry = buf[used:]
            if n:
                errors: list[RowError] = []
                try:
                    table.column("raw").validate(full=True)
                except Exception:  # noqa: BLE001 - pyarrow.ArrowInvalid: invalid UTF-8 somewhere in the block
                    table, errors = _repair(table, name)
                yield Block(table, line, errors)
                line += n
            if err is not None:
                yield Block(None, line, [RowError(file=name, line=-1,
                                                  error=f"input ends early (truncated or damaged): {err}")])
                return
            if final:
                return
