"""Readers shared by the file-based connectors (OSV, Sigma, Atomic, ComplianceAsCode, CTID ...).

Upstream repositories arrive as tar.gz snapshots (GitHub branch tarballs or the mirror's
repacked ones) holding many small YAML/Markdown/JSON files. These helpers stream such an
archive once, hand each wanted member to the caller, and turn every kind of damage (a
truncated gzip, a broken tar header, bad UTF-8, invalid YAML) into an ``InputError`` that names
the archive and the member, reported to the ``Quarantine`` while the rest goes on.
"""

from __future__ import annotations

import datetime as _dt
import functools
import gzip
import hashlib
import logging
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

import yaml

from secfoundry.sources.base import Quarantine, Remote, decode_text, load_json
from secfoundry.core.errors import InputError
from secfoundry.core.hashing import update_from_file

log = logging.getLogger(__name__)

# libyaml's C loader is ~10x faster than the pure-Python one; both are safe loaders.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def quarantine_or_new(quarantine: Quarantine | None) -> Quarantine:
    return quarantine if quarantine is not None else Quarantine()


def report(quarantine: Quarantine, source: str, file: str | Path, entry: str | int | None,
           error: str | BaseException) -> None:
    """Quarantine one bad entry and log it (so a sync without a quarantine file still says so)."""
    quarantine.add(source, str(file), entry, error)
    log.warning("%s: skipped %s%s: %s", source, file, f" [{entry}]" if entry is not None else "", error)


MAX_MEMBER_BYTES = 64 << 20


def _open_stream(path: Path) -> IO[bytes]:
    """The archive's byte stream, gunzipped by ``gzip`` (not tarfile) when it is gzip.

    tarfile's own streaming gunzip treats a gzip cut at a tar block boundary as a normal end of
    archive; ``GzipFile`` raises ``EOFError`` for a missing end-of-stream marker, so truncation
    is always detected (see ``_drain``).
    """
    raw = Path(path).open("rb")
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def _drain(fobj: IO[bytes]) -> None:
    """Read past the end-of-archive blocks to the gzip trailer: raises ``EOFError`` if truncated."""
    while fobj.read(1 << 20):
        pass


def iter_tar(path: Path, want: Callable[[str], bool], *, source: str,
             quarantine: Quarantine) -> Iterator[tuple[str, bytes]]:
    """Stream the regular files of a (gzipped) tarball whose member name passes ``want``.

    Streaming mode reads the archive once, front to back. A damaged archive (truncated gzip,
    corrupt tar header) is reported naming the archive and the last good member; everything
    read before the damage has already been yielded, so the rest of the data is not lost.
    """
    last = "(start of archive)"
    count = 0
    try:
        with _open_stream(path) as fobj, tarfile.open(fileobj=fobj, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name[2:] if member.name.startswith("./") else member.name
                if not want(name):
                    continue
                if member.size > MAX_MEMBER_BYTES:  # no upstream file is near this: refuse, don't load
                    report(quarantine, source, path, name, InputError(
                        f"member is {member.size} bytes, over the {MAX_MEMBER_BYTES} byte limit", file=str(path),
                        row=name))
                    continue
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                last = name
                count += 1
                yield name, data
            _drain(fobj)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        report(quarantine, source, path, last,
               InputError(f"damaged archive after {count} member(s), last good member {last!r} "
                          f"({type(e).__name__}: {e})", file=str(path)))


def tar_date(path: Path) -> str:
    """The newest member mtime of a tarball as YYYY-MM-DD: the upstream snapshot date.

    Reads headers only (still one pass of gunzip); returns "" when the archive is unreadable
    (``records`` then reports the damage with the member name).
    """
    newest = 0
    try:
        with _open_stream(path) as fobj, tarfile.open(fileobj=fobj, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    newest = max(newest, int(member.mtime))
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        pass
    if not newest:
        return ""
    return _dt.datetime.fromtimestamp(newest, _dt.timezone.utc).strftime("%Y-%m-%d")


def content_version(files: Iterable[Path]) -> str:
    """A content hash for sources that publish no version (OWASP, D3FEND Turtle)."""
    h = hashlib.sha256()
    for p in sorted(Path(f) for f in files):
        h.update(p.name.encode())
        update_from_file(h, p)
    return "sha256:" + h.hexdigest()[:12]


_StringLoader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


_ANCHOR = re.compile(r"(?:^|[\s\[{,:-])&([\w.-]+)")
_ALIAS = re.compile(r"(?:^|[\s\[{,:-])\*([\w.-]+)")
MAX_YAML_ALIASES = 100


def _check_aliases(text: str, file: str, entry: str | None) -> None:
    """Refuse YAML "billion laughs": nested aliases that expand exponentially once traversed.

    The safe loaders share aliased nodes, but anything walking the result (``jsonable``, ``str``)
    would expand them; upstream rule files use a handful of aliases at most.
    """
    if "&" not in text:
        return
    anchors = set(_ANCHOR.findall(text))
    if anchors and sum(1 for a in _ALIAS.findall(text) if a in anchors) > MAX_YAML_ALIASES:
        raise InputError(f"more than {MAX_YAML_ALIASES} YAML aliases (possible alias bomb)", file=file, row=entry)


def load_yaml(data: bytes | str, file: str, entry: str | None = None, *, strings: bool = False) -> Any:
    """Parse YAML (UTF-8 only); errors name the file, the member and the line.

    ``strings=True`` keeps every scalar a string (no implicit int/bool/date typing): right for
    formats whose schema is all strings (OSV), and ~25% faster because nothing is resolved.
    """
    text = decode_text(data, file, entry) if isinstance(data, bytes) else data
    _check_aliases(text, file, entry)
    try:
        return yaml.load(text, Loader=_StringLoader if strings else _YamlLoader)  # noqa: S506 - safe loaders
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"invalid YAML{where}: {problem}", file=file, row=entry) from e
    except RecursionError as e:  # absurd nesting: one bad member, not a crash of the whole archive
        raise InputError("YAML nested too deeply to parse", file=file, row=entry) from e


def jsonable(obj: Any) -> Any:
    """YAML gives dates and datetimes; records must be JSON-serialisable."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (_dt.date, _dt.datetime)):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return obj


def mirror_root(mirror: Path | str | None, folder: str) -> str:
    """The mirror root for ``mirror`` given as the root or as the source's own folder."""
    if mirror is None:
        return ""
    m = Path(mirror)
    return str(m if (m / folder).is_dir() else m.parent)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def md_escape_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


# -- ATT&CK ids: parse tags, and know which ids the pinned ATT&CK release has ------------------

_TECH_TAG = re.compile(r"^t(\d{4})(?:\.(\d{3}))?$", re.I)
_OBJ_TAG = re.compile(r"^(g|s|m|c|ds|ta|a)(\d{4})$", re.I)


def attack_id_from_tag(tag: str) -> str | None:
    """``t1059.001`` -> ``T1059.001``; ``g0016`` -> ``G0016``; anything else -> None."""
    tag = tag.strip()
    m = _TECH_TAG.match(tag)
    if m:
        return f"T{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")
    m = _OBJ_TAG.match(tag)
    if m:
        return f"{m.group(1).upper()}{m.group(2)}"
    return None


@dataclass(frozen=True)
class AttackCatalog:
    """The ids and tactic short names of the pinned ATT&CK release (all domains)."""

    version: str
    ids: frozenset[str]
    tactics: frozenset[str]
    revoked: frozenset[str]

    def known(self, attack_id: str) -> bool:
        return attack_id in self.ids


def attack_catalog(mirror: Path | None) -> AttackCatalog | None:
    """Read the ATT&CK STIX bundles beside this source (``mirror/attack/``) or in the ATT&CK
    connector's cache, to tell which ids are newer than (or unknown to) the pinned release.

    Returns None when no bundle is available: ids are then kept unchecked.
    """
    dirs = []
    if mirror is not None:
        dirs.append(Path(mirror) / "attack")
    try:
        from secfoundry.core.paths import home

        dirs.append(home() / "sources" / "attack")
    except OSError:
        pass
    for d in dirs:
        files = sorted(d.glob("*attack*.json*")) if d.is_dir() else []
        files = [f for f in files if not f.name.endswith(".meta.json") and f.name != "index.json"
                 and not f.name.startswith(".")]
        # A cache may hold several releases: check against the newest one only.
        versions = {f: tuple(int(x) for x in m.group(1).split("."))
                    for f in files if (m := re.search(r"-(\d+(?:\.\d+)*)\.json", f.name))}
        if versions:
            newest = max(versions.values())
            files = [f for f in files if versions.get(f) == newest]
        if files:
            return _load_catalog(tuple(files))
    return None


@functools.lru_cache(maxsize=4)
def _load_catalog(files: tuple[Path, ...]) -> AttackCatalog | None:
    ids: set[str] = set()
    tactics: set[str] = set()
    active: set[str] = set()
    versions: set[str] = set()
    for f in files:
        try:
            bundle = load_json(f)
        except InputError as e:
            log.warning("cannot read ATT&CK bundle %s to check ids: %s", f, e)
            continue
        m = re.search(r"-(\d+(?:\.\d+)*)\.json", f.name)
        if m:
            versions.add(m.group(1))
        for obj in bundle.get("objects", []) if isinstance(bundle, dict) else []:
            if obj.get("type") == "x-mitre-tactic" and obj.get("x_mitre_shortname"):
                tactics.add(obj["x_mitre_shortname"])
            for ref in obj.get("external_references", []) or []:
                if ref.get("source_name") in ("mitre-attack", "mitre-mobile-attack", "mitre-ics-attack") \
                        and ref.get("external_id"):
                    ids.add(ref["external_id"])
                    if not (obj.get("revoked") or obj.get("x_mitre_deprecated")):
                        active.add(ref["external_id"])
    if not ids:
        return None
    revoked = ids - active  # an id is retired only when no domain has a live object for it
    return AttackCatalog(", ".join(sorted(versions)), frozenset(ids), frozenset(tactics), frozenset(revoked))


def set_stats(snapshot: Any, **values: Any) -> None:
    """Report counts to the KB (``Snapshot.extra["stats"]`` is stored with the source row).

    Only scalars are kept there; a mapping or list is written as a short ``k=v, ...`` string.
    """
    stats = snapshot.extra.setdefault("stats", {})
    for key, val in values.items():
        if isinstance(val, dict):
            val = ", ".join(f"{k}={v}" for k, v in val.items())
        elif isinstance(val, (list, tuple, set)):
            val = ", ".join(str(v) for v in val)
        if isinstance(val, str) and len(val) > 2000:
            val = val[:1997] + "..."
        stats[key] = val


def at_ref(remote: Remote, ref: str | None, sha256: str | None = None) -> Remote:
    """``remote`` pinned to a git ``ref`` (tag, branch or commit) and/or a sha256.

    GitHub serves ``/archive/<ref>.tar.gz`` and ``raw.githubusercontent.com/<o>/<r>/<ref>/...``
    for any ref, so a commit id pins a moving branch tarball exactly. The cached file name
    carries the ref so two pins never share a cache entry.
    """
    if not ref:
        return Remote(remote.url, remote.filename, sha256 or remote.sha256)
    url = re.sub(r"/archive/(?:refs/heads/|refs/tags/)?[^/]+\.tar\.gz$", f"/archive/{ref}.tar.gz", remote.url)
    url = re.sub(r"^(https://raw\.githubusercontent\.com/[^/]+/[^/]+/)(?:refs/heads/)?[^/]+/", rf"\g<1>{ref}/", url)
    name = remote.name
    stem, dot, ext = name.partition(".")
    safe = re.sub(r"[^\w.-]", "_", ref)
    return Remote(url, f"{stem}@{safe}{dot}{ext}", sha256 or remote.sha256)
