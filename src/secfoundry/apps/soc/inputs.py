"""Open inputs as they come: plain files, stdin (``-``), ``.gz``/``.bz2``/``.xz``, ``.zip`` archives
(every member, e.g. the OTRF Security-Datasets exports), directories (recursively) and ``.evtx``.

Each input yields :class:`Unit` objects: a name (``file`` or ``archive.zip!member``), a kind
(``lines`` or ``evtx``) and the data. Nothing here decides the log format; see :mod:`.ingest`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

EVTX_MAGIC = b"ElfFile\x00"
_SKIP_SUFFIX = (".md", ".txt", ".yaml", ".yml", ".pdf", ".png", ".html")


@dataclass
class Unit:
    name: str
    kind: str  # "lines" | "evtx" | "error"
    stream: IO[bytes] | None = None
    path: str = ""  # evtx: a real file path
    error: str = ""


def _decompress(name: str, raw: IO[bytes]) -> IO[bytes]:
    low = name.lower()
    if low.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if low.endswith(".bz2"):
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    if low.endswith(".xz"):
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    return raw


def iter_units(inputs: list[str]) -> Iterator[Unit]:
    for inp in inputs:
        if inp == "-":
            yield Unit("<stdin>", "lines", sys.stdin.buffer)
            continue
        p = Path(inp)
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file() and not x.name.startswith(".")):
                if f.suffix.lower() in _SKIP_SUFFIX or f.name.startswith("LICENSE") or f.name == "manifest.jsonl":
                    continue
                yield from _file_units(f)
        elif p.is_file():
            yield from _file_units(p)
        else:
            yield Unit(str(p), "error", error="no such file or directory")


def _file_units(p: Path) -> Iterator[Unit]:
    name = str(p)
    try:
        with p.open("rb") as fh:
            head = fh.read(8)
    except OSError as e:
        yield Unit(name, "error", error=str(e))
        return
    if head == EVTX_MAGIC or p.suffix.lower() == ".evtx":
        yield Unit(name, "evtx", path=name)
        return
    if head[:4] == b"PK\x03\x04" or p.suffix.lower() == ".zip":
        try:
            zf = zipfile.ZipFile(p)
        except zipfile.BadZipFile as e:
            yield Unit(name, "error", error=f"damaged zip archive: {e}")
            return
        with zf:
            for info in zf.infolist():
                if info.is_dir() or info.filename.startswith("__MACOSX/"):
                    continue
                member = f"{name}!{info.filename}"
                try:
                    if info.filename.lower().endswith(".evtx"):
                        with tempfile.NamedTemporaryFile(suffix=".evtx", delete=False) as tmp:
                            tmp.write(zf.read(info))
                        yield Unit(member, "evtx", path=tmp.name)
                        Path(tmp.name).unlink(missing_ok=True)
                        continue
                    with zf.open(info) as raw:
                        yield Unit(member, "lines", _decompress(info.filename, raw))
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    yield Unit(member, "error", error=f"unreadable archive member: {e}")
        return
    fh = p.open("rb")
    try:
        yield Unit(name, "lines", _decompress(name, fh))
    finally:
        fh.close()


def iter_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, bytes without the newline); a truncated compressed stream ends with an
    ``EOFError`` that the caller reports as an error at the next line."""
    buf = io.BufferedReader(stream) if not hasattr(stream, "peek") else stream  # type: ignore[arg-type]
    for n, line in enumerate(buf, 1):
        yield n, line.rstrip(b"\r\n")
