"""Lines of a (plain or gzipped) file as Arrow blocks, with no per-line Python work.

A block is ~``BLOCK_BYTES`` of whole lines: numpy finds the newlines and the block's bytes become
one Arrow string array whose offsets are the line starts (no copy: each string keeps its line
break, which the SQL strips with ``rtrim``, as the Python reader's ``rstrip(b"\\r\\n")`` does);
line numbers are a range. A plain file is memory-mapped, so its bytes are never copied in Python.
A block that is pure ASCII is valid UTF-8 as it is; otherwise Arrow checks it, and only a block
that fails is decoded line by line (bad bytes replaced, the row kept, one error per line — the
same rule and message as the Python parsers).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from secfoundry.apps.soc.schemas import RowError

BLOCK_BYTES = 64 << 20


@dataclass
class Block:
    table: Any  # pyarrow.Table(line int64, raw large_string with line breaks); None: an error block
    first_line: int
    errors: list[RowError] = field(default_factory=list)


def _offsets(buf: Any, final: bool) -> np.ndarray | None:
    """Start offsets of the whole lines in ``buf`` plus the end of the last one (None: no whole line)."""
    a = np.frombuffer(buf, dtype=np.uint8)
    nl = np.flatnonzero(a == 10)
    if final and (not len(nl) or nl[-1] != len(a) - 1) and len(a):
        nl = np.append(nl, len(a) - 1)  # last line without a newline
    if not len(nl):
        return None
    offsets = np.empty(len(nl) + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = nl + 1
    return offsets


def _repair(buf: Any, offsets: np.ndarray, first_line: int, name: str) -> tuple[Any, list[RowError]]:
    """A block with invalid UTF-8: decode line by line, bad bytes replaced (row kept, reported)."""
    import pyarrow as pa

    out: list[str] = []
    errors: list[RowError] = []
    for i in range(len(offsets) - 1):
        b = bytes(buf[offsets[i]:offsets[i + 1]])
        try:
            out.append(b.decode("utf-8"))
        except UnicodeDecodeError as e:
            text = b.decode("utf-8", errors="replace")
            out.append(text)
            errors.append(RowError(file=name, line=first_line + i, error=f"not valid UTF-8 at byte {e.start}: "
                                   "bytes replaced (row kept)", snippet=text.rstrip("\r\n")[:120]))
    lines = pa.array(np.arange(first_line, first_line + len(out), dtype=np.int64))
    return pa.table({"line": lines, "raw": pa.array(out, type=pa.large_string())}), errors


def _block(buf: Any, first_line: int, final: bool, name: str) -> tuple[Block | None, int, int]:
    """(block, lines, bytes consumed) of the whole lines at the start of ``buf``."""
    import pyarrow as pa

    offsets = _offsets(buf, final)
    if offsets is None:
        return None, 0, 0
    n, used = len(offsets) - 1, int(offsets[-1])
    raw = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf))
    if np.frombuffer(buf, dtype=np.uint8, count=used).max(initial=0) >= 0x80:  # not pure ASCII
        try:
            raw.validate(full=True)
        except pa.ArrowInvalid:
            table, errors = _repair(buf, offsets, first_line, name)
            return Block(table, first_line, errors), n, used
    lines = pa.array(np.arange(first_line, first_line + n, dtype=np.int64))
    return Block(pa.table({"line": lines, "raw": raw}), first_line), n, used


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


def _mapped(path: str, name: str, block_bytes: int) -> Iterator[Block]:
    import mmap

    size = os.path.getsize(path)
    if size == 0:
        return
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # closed when the last block is freed
    view = memoryview(mm)
    pos, line = 0, 1
    while pos < size:
        end = min(pos + block_bytes, size)
        blk, n, used = _block(view[pos:end], line, end == size, name)
        while blk is None and end < size:  # a line longer than the block: widen it
            end = min(end + block_bytes, size)
            blk, n, used = _block(view[pos:end], line, end == size, name)
        if blk is None:
            return
        yield blk
        pos += used
        line += n


def iter_blocks(path: str, name: str, block_bytes: int | None = None) -> Iterator[Block]:
    """Blocks of whole lines. A truncated ``.gz`` keeps its whole lines read before the damage and
    ends with an error block, as the line reader of the Python path does."""
    block_bytes = block_bytes or BLOCK_BYTES
    if not path.lower().endswith(".gz"):
        yield from _mapped(path, name, block_bytes)
        return
    carry = b""
    line = 1
    with gzip.open(path, "rb") as f:
        while True:
            chunk, err = _read(f, block_bytes)
            final = not chunk and err is None
            buf = carry + chunk if carry else chunk
            if not buf and err is None:
                return
            blk, n, used = _block(buf, line, final, name)
            carry = buf[used:]
            if blk is not None:
                yield blk
                line += n
            if err is not None:
                yield Block(None, line, [RowError(file=name, line=-1,
                                                  error=f"input ends early (truncated or damaged): {err}")])
                return
            if final:
                return


def prefetch(blocks: Iterator[Block]) -> Iterator[Block]:
    """The next block is split in a thread while the caller (DuckDB, which releases the GIL)
    works on the current one; errors of the reader are raised in the caller."""
    import queue
    import threading

    q: queue.Queue[Any] = queue.Queue(maxsize=1)
    end = object()

    def run() -> None:
        try:
            for b in blocks:
                q.put(b)
            q.put(end)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            q.put(e)

    threading.Thread(target=run, name="soc-blocks", daemon=True).start()
    while True:
        item = q.get()
        if item is end:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
