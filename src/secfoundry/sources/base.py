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
import re
import time
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from collections import Counter
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

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


def each_loaded(source: str, files: Iterable[Any], load: Callable[[Any], Any], q: Quarantine,
                stats: Counter[str]) -> Iterator[tuple[Any, Any]]:
    """``(file, load(file))`` for each file; a file whose load raises :class:`InputError` is
    quarantined under ``source``, counted in ``stats["bad_files"]`` and skipped."""
    for file in files:
        try:
            data = load(file)
        except InputError as e:
            q.add(source, str(file), None, e)
            stats["bad_files"] += 1
            continue
        yield file, data


class Source(ABC):
    """A connector declares what it is and where its files are; it writes only what differs.

    Declared: ``name``/``title``/``license``/``homepage``; the mirror layout (``folder`` under the
    mirror root, default ``name``; the ``patterns`` that make up a snapshot; ``first_only``
    when one file is the snapshot); the pinned live URLs (``remotes()``); the version
    (``version_of(files)``). ``fetch`` is generic on top of these (mirror or download, never a
    silent fall-back to the network).

    Written: ``parse(snapshot, quarantine)``, yielding ``Record``s, or ``(Record, context)``
    pairs when the document needs more than the record (the upstream YAML text, say), and
    ``render(record, context)`` for a richer document than the generic ``record_document``.
    ``records``/``documents`` are derived from these two; connectors whose documents need the
    whole parse (cross-record names) override ``documents``.
    """

    name: str = ""  # registry key: "attack", "cwe", ...
    title: str = ""
    license: str = ""  # SPDX-ish id or short name, carried into every record and document
    homepage: str = ""
    folder: str = ""  # mirror/<folder>/ (default: name)
    patterns: Sequence[str] = ("*",)  # globs of the mirror files that make up a snapshot
    first_only: bool = False  # the snapshot is the first matching file

    # -- declared ------------------------------------------------------------------------------
    def remotes(self) -> Sequence["Remote"]:
        """The live files (URL, cache name, pinned sha256); none means mirror only."""
        return ()

    def mirror_patterns(self) -> Sequence[str]:
        return self.patterns

    def version_of(self, files: list[Path]) -> str:
        """The upstream version or date the files state ("" when they state none)."""
        return ""

    def snapshot_extra(self, mirror: Path | None, files: list[Path]) -> dict[str, Any]:
        return {}

    # -- generic -------------------------------------------------------------------------------
    def fetch(self, mirror: Path | None = None, *, fetcher: Any = None) -> Snapshot:
        """Resolve the upstream files: from ``mirror/<folder>/`` when given, else download."""
        files, origin = resolve_files(self.name, mirror, folder=self.folder or self.name,
                                      patterns=self.mirror_patterns(), remotes=self.remotes(), fetcher=fetcher)
        if self.first_only:
            files = files[:1]
        return Snapshot(self.name, files, version=self.version_of(files), origin=origin,
                        extra=self.snapshot_extra(mirror, files))

    @abstractmethod
    def parse(self, snapshot: Snapshot, quarantine: Quarantine) -> Iterator[Any]:
        """Typed records (or ``(record, context)`` pairs) from the snapshot; bad entries quarantined."""

    def render(self, rec: Record, context: Any = None) -> Document:
        """The corpus document of one record (clean Markdown with provenance)."""
        return record_document(rec)

    def records(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Record]:
        """Parse the snapshot into typed KB records."""
        for item in self.parse(snapshot, quarantine if quarantine is not None else Quarantine()):
            yield item[0] if isinstance(item, tuple) else item

    def current_records(self, snapshot: Snapshot, quarantine: Quarantine | None = None
                        ) -> tuple[list[Record], dict[str, str]]:
        """The records that are not deprecated, and the name of every record by id (documents
        that cite related ids print their names)."""
        recs = list(self.records(snapshot, quarantine))
        return [r for r in recs if not r.deprecated], {r.id: r.name for r in recs}

    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        """Render corpus documents: one per record."""
        for item in self.parse(snapshot, quarantine if quarantine is not None else Quarantine()):
            yield self.render(*item) if isinstance(item, tuple) else self.render(item)


class GitTarballSource(Source):
    """A source published as a GitHub repository: a branch tarball (plus raw files), pinnable to
    a git ``ref`` and a tarball ``sha256``; its version is the tarball's newest member date."""

    tarball: "Remote"
    raw_files: Sequence["Remote"] = ()  # raw.githubusercontent.com files pinned to the same ref

    def __init__(self, ref: str | None = None, sha256: str | None = None):
        """``ref``: a git tag, branch or commit to pin the live download to; ``sha256`` of the tarball."""
        self.ref, self.sha256 = ref, sha256

    def remotes(self) -> Sequence["Remote"]:
        from secfoundry.sources._archives import at_ref

        return (at_ref(self.tarball, self.ref, self.sha256), *(at_ref(r, self.ref) for r in self.raw_files))

    def tarballs(self, files: list[Path]) -> list[Path]:
        return [f for f in files if f.name.endswith((".tar.gz", ".tgz"))]

    def version_of(self, files: list[Path]) -> str:
        from secfoundry.sources._archives import tar_date

        tarballs = self.tarballs(files)
        return tar_date(tarballs[0]) if tarballs else ""

    def snapshot_extra(self, mirror: Path | None, files: list[Path]) -> dict[str, Any]:
        """Where the pinned ATT&CK release is found to check technique ids against."""
        from secfoundry.sources._archives import mirror_root

        return {"mirror_root": mirror_root(mirror, self.folder or self.name)}


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


def document_of(rec: Record, text: str, *, id: str | None = None, title: str | None = None,
                source: str | None = None, license: str | None = None, version: str | None = None,
                **metadata: Any) -> Document:
    """A record's corpus document: provenance from the record (unless given), ``record_type`` and
    ``record_id`` plus ``metadata`` in the document metadata."""
    return Document(id=id if id is not None else f"{rec.source}:{rec.id}", text=text,
                    source=rec.source if source is None else source, url=rec.url,
                    license=rec.license if license is None else license,
                    title=rec.name if title is None else title, version=rec.version if version is None else version,
                    metadata={"record_type": rec.type, "record_id": rec.id, **record_dates(rec), **metadata})


# Record date attributes copied into document metadata (the corpus date cutoff reads them:
# corpus/prepare/dates.py says which field each source is cut by).
DATE_ATTRIBUTES = ("published", "created", "modified", "date", "date_added", "last_modified", "updated")


def record_dates(rec: Record) -> dict[str, str]:
    return {k: str(v)[:32] for k in DATE_ATTRIBUTES if (v := rec.attributes.get(k)) and isinstance(v, str)}


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
    return document_of(rec, "\n".join(lines).strip() + "\n")


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
    except RecursionError as e:  # absurd nesting: an input error, not a crash of the whole source
        raise InputError("JSON nested too deeply to parse", file=str(path), row=entry) from e


def text_stream(path: Path) -> io.TextIOWrapper:
    """A UTF-8 text stream over a (possibly gzipped) file, for CSV readers and line parsers."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="")


def markdown_document(source: Source, rec: Record, lines: list[str], **metadata: Any) -> Document:
    """A record rendered from Markdown lines (runs of blank lines collapsed) with provenance."""
    return document_of(rec, re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n", id=f"{source.name}:{rec.id}",
                       source=source.name, license=source.license, title=f"{rec.id}: {rec.name}", **metadata)
