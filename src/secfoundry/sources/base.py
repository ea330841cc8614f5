"""The connector interface: one module per high-value source implements ``Source``.

A connector resolves its upstream files (a mirror directory laid out like
``../shared/data/mirror/<name>/`` or a live download into the cache), parses them into typed
KB records, and renders corpus documents. Bad entries are reported to a ``Quarantine`` and
skipped; they never stop a sync.
"""

from __future__ import annotations

import gzip
import io
import json
import time
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError, Quarantine  # noqa: F401  (connectors import it from here)
from secfoundry.core.records import Record


@dataclass
class Snapshot:
    """The local files of one source at one version."""

    source: str
    files: list[Path]
    version: str = ""  # upstream version or date, as the source states it
    origin: str = ""  # "mirror:<dir>" or the URL(s) fetched
    fetched_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)


class Source(ABC):
    name: str = ""  # registry key: "attack", "cwe", ...
    title: str = ""
    license: str = ""  # SPDX-ish id or short name, carried into every record and document
    homepage: str = ""

    @abstractmethod
    def fetch(self, mirror: Path | None = None, *, fetcher: Any = None) -> Snapshot:
        """Resolve the upstream files: from ``mirror/<name>/`` when given, else download."""

    @abstractmethod
    def records(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Record]:
        """Parse the snapshot into typed KB records."""

    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        """Render corpus documents (clean Markdown with provenance). Default: one per record."""
        for rec in self.records(snapshot, quarantine):
            yield record_document(rec)


_REGISTRY: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Source]]:
    """All connectors, importing their modules on first use."""
    from secfoundry import sources  # noqa: F401  (modules register themselves)

    sources.load_all()
    return dict(_REGISTRY)


def record_document(rec: Record) -> Document:
    """Generic Markdown rendering of a record; connectors override for richer layouts."""
    lines = [f"# {rec.id}: {rec.name}".rstrip(": "), ""]
    if rec.description:
        lines += [rec.description.strip(), ""]
    for key, val in rec.attributes.items():
        if isinstance(val, (str, int, float)) and str(val).strip():
            lines.append(f"- **{key}**: {val}")
    rels = [f"- {r.type}: {r.target}" for r in rec.relations]
    if rels:
        lines += ["", "## Related", *rels]
    return Document(
        id=f"{rec.source}:{rec.id}",
        text="\n".join(lines).strip() + "\n",
        source=rec.source,
        url=rec.url,
        license=rec.license,
        title=rec.name,
        version=rec.version,
        metadata={"record_type": rec.type, "record_id": rec.id},
    )


# -- helpers shared by connectors -------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """One upstream file: its live URL, the name it gets in the cache, and its pinned sha256."""

    url: str
    filename: str = ""  # default: the last part of the URL path
    sha256: str | None = None

    @property
    def name(self) -> str:
        return self.filename or self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


def source_cache(name: str) -> Path:
    """``SECFOUNDRY_HOME/sources/<name>/``: where live downloads of a source go."""
    from secfoundry.core.paths import cache_dir

    return cache_dir("sources", name)


def mirror_files(mirror: Path, folder: str, patterns: Sequence[str]) -> list[Path]:
    """Files of ``mirror/<folder>/`` matching any glob in ``patterns`` (sorted, de-duplicated).

    ``mirror`` may be the mirror root (``../shared/data/mirror``) or the source folder itself.
    Raises ``InputError`` naming the directory when nothing matches.
    """
    mirror = Path(mirror)
    base = mirror / folder if (mirror / folder).is_dir() else mirror
    if not base.is_dir():
        raise InputError(f"mirror directory for {folder!r} not found", file=str(mirror / folder))
    found: dict[Path, None] = {}
    for pat in patterns:
        for p in sorted(base.glob(pat)):
            if p.is_file() and not p.name.endswith(".meta.json"):
                found[p] = None
    if not found:
        raise InputError(f"no files matching {list(patterns)} in the {folder!r} mirror", file=str(base))
    return list(found)


def download_remotes(name: str, remotes: Sequence[Remote], fetcher: Any = None) -> list[Path]:
    """Download ``remotes`` into ``source_cache(name)`` (conditional, pinned); returns the paths."""
    from secfoundry.core.download import Fetcher

    own = fetcher is None
    fetcher = fetcher or Fetcher()
    try:
        dest = source_cache(name)
        return [fetcher.download(r.url, dest / r.name, sha256=r.sha256) for r in remotes]
    finally:
        if own:
            fetcher.close()


def resolve_files(name: str, mirror: Path | None, *, folder: str | None = None,
                  patterns: Sequence[str] = ("*",), remotes: Sequence[Remote] = (),
                  fetcher: Any = None) -> tuple[list[Path], str]:
    """Mirror-or-download: ``(files, origin)`` where origin is ``"mirror:<dir>"`` or the URLs.

    With a mirror, only the mirror is read (never a silent fall-back to the network).
    """
    if mirror is not None:
        files = mirror_files(Path(mirror), folder or name, patterns)
        return files, f"mirror:{files[0].parent}"
    if not remotes:
        raise InputError(f"source {name!r} has no live URL; pass a mirror directory")
    return download_remotes(name, remotes, fetcher), " ".join(r.url for r in remotes)


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading, transparently gunzipping when it starts with the gzip magic."""
    f = Path(path).open("rb")
    if f.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def read_bytes(path: Path) -> bytes:
    """The (gunzipped) content of ``path``; a truncated or corrupt gzip raises ``InputError``."""
    try:
        with open_binary(path) as f:
            return f.read()
    except (EOFError, OSError, zlib.error) as e:
        raise InputError(f"cannot read ({type(e).__name__}: {e})", file=str(path)) from e


def decode_text(data: bytes, file: str, entry: str | int | None = None) -> str:
    """UTF-8 (BOM tolerated); other encodings are an ``InputError`` naming file/entry/offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 at byte {e.start} ({e.reason})", file=file, row=entry) from e


def load_json(path: Path, data: bytes | None = None, entry: str | int | None = None) -> Any:
    """Parse a (possibly gzipped) JSON file; errors name the file, entry, line and column."""
    raw = read_bytes(path) if data is None else data
    text = decode_text(raw, str(path), entry)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}",
                         file=str(path), row=entry) from e


def text_stream(path: Path) -> io.TextIOWrapper:
    """A UTF-8 text stream over a (possibly gzipped) file, for CSV readers and line parsers."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="")


def markdown_document(source: Source, rec: Record, lines: list[str]) -> Document:
    """A record rendered from Markdown lines (runs of blank lines collapsed) with provenance."""
    import re

    return Document(
        id=f"{source.name}:{rec.id}", text=re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n",
        source=source.name, url=rec.url, license=source.license, title=f"{rec.id}: {rec.name}", version=rec.version,
        metadata={"record_type": rec.type, "record_id": rec.id},
    )
