"""``kb sync``: run the source connectors into the store, then refresh the dense index.

Incremental: a source whose content hash (its snapshot files, version, connector code and the
store schema) equals the one recorded at its last successful sync is skipped unless ``force``.
Resumable: each source is written in one transaction that ends with its completion marker
(status ``done`` and the run id). A sync that is killed leaves its run marked ``running``; the
next sync with the same sources resumes that run and skips the sources it had finished (even
under ``force``). Embeddings are cached per text, so an interrupted embedding step resumes too.
Bad entries go to the connector's quarantine (``<kb>/quarantine/<source>.jsonl``) and are
reported at the end; a source that fails outright keeps its previous data and the rest goes on.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from secfoundry.sources.base import Quarantine, Snapshot, Source, registry
from secfoundry.core.errors import InputError
from secfoundry.core.hashing import update_from_file
from secfoundry.kb.dense import BuildStats, DensePolicy, Embedder
from secfoundry.core.records import Record
from secfoundry.kb.store import SCHEMA_VERSION, SourceRow, Store


@dataclass
class SourceResult:
    name: str
    # synced | unchanged | resumed (done earlier in this run) | unavailable (fetch failed, e.g. not in
    # the mirror; previous data kept) | failed (parse/store failed; previous data kept)
    status: str
    version: str = ""
    records: int = 0
    relations: int = 0
    passages: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    error: str = ""


@dataclass
class SyncReport:
    run_id: int
    resumed: bool
    results: list[SourceResult] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    dense: BuildStats | None = None
    dense_error: str = ""
    seconds: float = 0.0
    rendered: Any = None  # kb.rendered.RenderStats when entries were (re)rendered

    explicit: bool = False  # sources were named by the caller (then "unavailable" is a failure too)

    @property
    def failed(self) -> list[SourceResult]:
        bad = ("failed", "unavailable") if self.explicit else ("failed",)
        return [r for r in self.results if r.status in bad]

    @property
    def unavailable(self) -> list[SourceResult]:
        return [r for r in self.results if r.status == "unavailable"]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "resumed": self.resumed, "seconds": self.seconds,
                "results": [asdict(r) for r in self.results], "quarantine": self.quarantine,
                "dense": asdict(self.dense) if self.dense else None, "dense_error": self.dense_error,
                "rendered": asdict(self.rendered) if self.rendered else None}


class Progress:
    """Callbacks a sync reports to (the CLI draws them with rich); all optional."""

    def source_start(self, name: str, expected: int | None) -> None: ...
    def source_records(self, name: str, n: int) -> None: ...
    def source_end(self, result: SourceResult) -> None: ...
    def embed(self, done: int, total: int) -> None: ...
    def render(self, done: int, total: int) -> None: ...


def content_hash(src: Source, snap: Snapshot) -> str:
    """What decides "unchanged": file bytes, stated version, connector code, store schema."""
    h = hashlib.sha256()
    h.update(f"schema={SCHEMA_VERSION}\nversion={snap.version}\n".encode())
    try:
        h.update(Path(inspect.getfile(type(src))).read_bytes())
    except (OSError, TypeError):
        h.update(type(src).__qualname__.encode())
    for f in sorted(Path(p) for p in snap.files):
        h.update(f"\n{f.name}\n".encode())
        if f.is_dir():
            for sub in sorted(x for x in f.rglob("*") if x.is_file()):
                h.update(str(sub.relative_to(f)).encode())
                h.update(sub.read_bytes())
        elif f.exists():
            update_from_file(h, f)
    return h.hexdigest()


def _lock(path: Path) -> Any:
    """An exclusive, non-blocking lock so two syncs never write one store at once."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise RuntimeError(f"another kb sync holds {path}") from None
    return fh


def select_sources(names: Iterable[str] | None, available: dict[str, type[Source]]) -> list[str]:
    if not names:
        return sorted(available)
    wanted = [n.strip() for n in names if n and n.strip()]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise InputError(f"unknown source(s) {', '.join(unknown)}; available: {', '.join(sorted(available))}",
                         field="sources")
    return list(dict.fromkeys(wanted))


@dataclass(frozen=True)
class KBPaths:
    """Where one knowledge base lives: a directory, or a ``.sqlite`` file with siblings."""

    db: Path
    dense: Path
    quarantine: Path
    lock: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> "KBPaths":
        p = Path(path).expanduser()
        if p.suffix in (".sqlite", ".sqlite3", ".db"):
            return cls(p, p.with_name(p.stem + ".dense"), p.with_name(p.stem + ".quarantine"),
                       p.with_name(p.stem + ".lock"))
        return cls(p / "kb.sqlite", p / "dense", p / "quarantine", p / "sync.lock")


def sync(store: Store, paths: KBPaths, *, mirror: Path | None = None, sources: Iterable[str] | None = None,
         force: bool = False, dense: bool = True, embedder: Embedder | Callable[[], Embedder] | None = None,
         policy: DensePolicy | None = None, progress: Progress | None = None, fetcher: Any = None,
         connectors: dict[str, type[Source]] | None = None,
         after_source: Callable[[str], None] | None = None, render: bool = True) -> SyncReport:
    """Sync ``sources`` (default: every registered connector) into ``store``.

    ``connectors`` overrides the registry (tests); ``after_source`` is called after each
    committed source (tests use it to simulate a crash). ``render`` materialises every entry's
    ``kb show`` JSON afterwards (``kb/rendered.py``) unless it is already current.
    """
    t0 = time.time()
    progress = progress or Progress()
    available = connectors if connectors is not None else registry()
    names = select_sources(sources, available)
    lock = _lock(paths.lock)
    try:
        options = {"mirror": str(mirror) if mirror else None, "force": force}
        last = store.last_run()
        resumed = bool(last and last["status"] == "running" and last["sources"] == names
                       and last["options"].get("mirror") == options["mirror"])
        run_id = last["id"] if resumed and last else store.start_run(names, options)
        report = SyncReport(run_id=run_id, resumed=resumed, explicit=bool(sources))
        qdir = paths.quarantine
        for name in names:
            res = _sync_one(store, available[name], name, run_id, resumed, mirror, force, fetcher, qdir, progress,
                            report)
            report.results.append(res)
            progress.source_end(res)
            if after_source:
                after_source(name)
        changed = any(r.status == "synced" for r in report.results)
        if dense:
            report.dense, report.dense_error = _dense(store, paths.dense, embedder, policy, progress, changed)
        else:
            if changed:
                store.set_meta("dense_state", "stale")
        if render:
            from secfoundry.kb.rendered import render_all

            report.rendered = render_all(store, progress=getattr(progress, "render", None))
        store.finish_run(run_id, "failed" if report.failed else "done")
        report.seconds = time.time() - t0
        return report
    finally:
        lock.close()


def _sync_one(store: Store, cls: type[Source], name: str, run_id: int, resumed: bool, mirror: Path | None,
              force: bool, fetcher: Any, qdir: Path, progress: Progress, report: SyncReport) -> SourceResult:
    t0 = time.time()
    prev = store.source(name)
    if resumed and prev and prev.status == "done" and prev.run_id == run_id:
        return SourceResult(name, "resumed", prev.version, prev.records, prev.relations, prev.passages,
                            prev.quarantined)
    progress.source_start(name, prev.records if prev and prev.records else None)
    try:
        src = cls()
        snap = src.fetch(mirror, fetcher=fetcher) if fetcher is not None else src.fetch(mirror)
    except Exception as e:  # not in the mirror / download failed: keep what the KB had
        msg = f"{type(e).__name__}: {e}"
        if prev is not None:
            store.mark_source_failed(name, msg, run_id, status="unavailable")
        return SourceResult(name, "unavailable", prev.version if prev else "", error=msg, seconds=time.time() - t0)
    try:
        chash = content_hash(src, snap)
        if not force and prev and prev.status == "done" and prev.content_hash == chash:
            return SourceResult(name, "unchanged", prev.version, prev.records, prev.relations, prev.passages,
                                prev.quarantined, time.time() - t0)
        qpath = qdir / f"{name}.jsonl"
        qpath.unlink(missing_ok=True)
        quarantine = Quarantine(qpath)
        row = SourceRow(name=name, title=src.title, version=snap.version, origin=snap.origin, license=src.license,
                        content_hash=chash, run_id=run_id,
                        stats={k: v for k, v in (snap.extra.get("stats") or {}).items()
                               if isinstance(v, (int, float, str))} if isinstance(snap.extra, dict) else {})

        def recs() -> Iterator[Record]:
            yield from src.records(snap, quarantine)
            row.quarantined = len(quarantine)
            if isinstance(snap.extra, dict) and isinstance(snap.extra.get("stats"), dict):
                row.stats.update({k: v for k, v in snap.extra["stats"].items() if isinstance(v, (int, float, str))})

        store.replace_source(row, recs(), progress=lambda n: progress.source_records(name, n))
        report.quarantine.extend(quarantine.items)
        return SourceResult(name, "synced", row.version, row.records, row.relations, row.passages, row.quarantined,
                            time.time() - t0)
    except Exception as e:  # one broken source never stops the others
        msg = f"{type(e).__name__}: {e}"
        store.mark_source_failed(name, msg, run_id)
        return SourceResult(name, "failed", prev.version if prev else "", error=msg, seconds=time.time() - t0)


def _dense(store: Store, index_dir: Path, embedder: Embedder | Callable[[], Embedder] | None,
           policy: DensePolicy | None, progress: Progress, changed: bool) -> tuple[BuildStats | None, str]:
    """Rebuild the dense index when records changed, the model/policy changed or it is missing."""
    from secfoundry.kb import dense as dmod

    try:
        emb = embedder() if callable(embedder) and not hasattr(embedder, "encode") else embedder
        emb = emb or dmod.make_embedder()
        policy = policy or DensePolicy()
        policy_json = json.dumps(asdict(policy), default=sorted, sort_keys=True)
        fresh = (not changed and store.get_meta("dense_state") == "fresh"
                 and store.get_meta("dense_model") == emb.name and store.get_meta("dense_policy") == policy_json
                 and all(p.exists() for p in dmod.DenseIndex.files(index_dir)))
        if fresh:
            return None, ""
        store.set_meta("dense_state", "building")
        _, stats = dmod.build(store, emb, index_dir, policy, progress=progress.embed)
        store.set_meta("dense_model", emb.name)
        store.set_meta("dense_policy", policy_json)
        store.set_meta("dense_state", "fresh")
        return stats, ""
    except Exception as e:  # the lexical index stays usable; the next sync retries
        store.set_meta("dense_state", "stale")
        return None, f"{type(e).__name__}: {e}"
