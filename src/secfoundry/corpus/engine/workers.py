"""Partition workers: what each Ray Data actor runs for one partition (plain Python, no Ray).

``CollectWorker`` turns one collect task into a partition; ``PhaseWorker`` reads one input
partition, runs the phase's steps over it in batches and commits the result. Ray Data calls
:func:`run_items` through ``map_batches`` on a task pool; Ray reuses its worker processes, and
a per-process cache keeps each phase's worker (its steps, and any models they load) alive
across partitions, which gives actor-style set-up amortisation without paying an actor
process start per phase. Each call returns one stats row per partition.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from secfoundry.corpus.step import Dropped, step_kind
from secfoundry.corpus.engine.registry import build_step
from secfoundry.corpus.engine.storage import PhaseStore, read_documents
from secfoundry.core.errors import Quarantine
from secfoundry.core.documents import Document

_NUM_SUFFIX = re.compile(r"(:-?[0-9][0-9.eE+-]*)+$")


def reason_key(step: str, reason: str) -> str:
    """Summary bucket of a drop reason: ``relevance:0.12`` -> ``relevance``, ``lang:de`` stays,
    a bare ``short`` from step ``quality`` -> ``quality:short``. The exclusion Parquet keeps the
    full reason; only counts are grouped."""
    r = _NUM_SUFFIX.sub("", (reason or "").split("\n", 1)[0]).strip() or step or "dropped"
    if r.startswith("error:"):
        r = "error:" + r[6:].split(":", 1)[0].strip()  # group errors by exception type
        return f"{step}:{r}" if step else r
    return r if ":" in r or not step or r == step else f"{step}:{r}"


def _result(key: str, **kw: Any) -> dict[str, list[Any]]:
    row = {"key": key, "docs_in": 0, "docs_out": 0, "dropped": 0, "error": "", "seconds": 0.0,
           "stats": "{}"}
    row.update(kw)
    return {k: [v] for k, v in row.items()}


class CollectWorker:
    def __init__(self, phase_dir: str, partition_rows: int, compression: str, keep_excluded: bool):
        self.store = PhaseStore(Path(phase_dir))
        self.partition_rows = partition_rows
        self.compression = compression
        self.keep_excluded = keep_excluded

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for task_json in batch["task"]:
            row = self.collect(json.loads(task_json))
            for k, v in row.items():
                out.setdefault(k, []).extend(v)
        return out

    def collect(self, task: dict[str, Any]) -> dict[str, list[Any]]:
        from secfoundry.corpus.collect.plan import CollectTask, iter_task_documents

        t0 = time.time()
        key = task["key"]
        q = Quarantine()
        files: list[str] = []
        buf: list[Document] = []
        dup: list[Dropped] = []
        seen: set[str] = set()
        n_out = 0
        chars = 0
        by_source: Counter[str] = Counter()
        error = ""
        work = self.store.root / "work"
        work.mkdir(parents=True, exist_ok=True)

        def flush() -> None:
            nonlocal buf
            files.append(self.store.write_data(f"{key}-{len(files):05d}.parquet", buf, self.compression))
            buf = []

        try:
            for doc in iter_task_documents(CollectTask(**task), q, work):
                if doc.id in seen:  # the same id twice in one input: keep the first, audit the rest
                    dup.append(Dropped(doc, "collect", "collect:duplicate-id"))
                    continue
                seen.add(doc.id)
                doc.metadata.setdefault("collect_task", key)
                buf.append(doc)
                n_out += 1
                chars += len(doc.text)
                by_source[doc.source] += 1
                if len(buf) >= self.partition_rows:
                    flush()
        except Exception as e:  # a failing input is recorded in its marker; other inputs go on
            error = f"{type(e).__name__}: {e}"
            q.add(task.get("kind", ""), task["params"].get("path") or task["params"].get("name", ""), None,
                  traceback.format_exc(limit=5))
        if buf or not files:
            flush()
        excluded = [self.store.write_excluded(f"{key}.parquet", dup, self.compression)] \
            if dup and self.keep_excluded else []
        dropped = {"collect:duplicate-id": len(dup)} if dup else {}
        stats = {"docs_in": n_out + len(dup), "docs_out": n_out, "chars_out": chars, "dropped": dropped,
                 "by_source": dict(by_source), "quarantined": len(q), "error": error,
                 "seconds": round(time.time() - t0, 3)}
        self.store.write_marker(key, files, excluded, stats, quarantine=q.items)
        return _result(key, docs_in=stats["docs_in"], docs_out=n_out, dropped=len(dup), error=error,
                       seconds=stats["seconds"], stats=json.dumps({"dropped": dropped, "quarantined": len(q)}))


class PhaseWorker:
    def __init__(self, phase_dir: str, steps: list[dict[str, Any]], batch_size: int, compression: str,
                 keep_excluded: bool):
        self.store = PhaseStore(Path(phase_dir))
        self.batch_size = batch_size
        self.compression = compression
        self.keep_excluded = keep_excluded
        self.steps = []
        self.routes: list[tuple[list[str], list[str]]] = []
        for spec in steps:
            step = build_step(spec["step"], spec.get("options"))
            if callable(getattr(step, "setup", None)):
                step.setup()
            if step_kind(step) == "global":
                step.load(self.store.state_dir)
            self.steps.append(step)
            self.routes.append((list(spec.get("sources") or []), list(spec.get("skip_sources") or [])))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for key, path in zip(batch["key"], batch["input"]):
            try:
                row = self.process(str(key), Path(str(path)))
            except Exception as e:  # not committed: the phase reports it and a rerun retries it
                row = _result(str(key), error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")
            for k, v in row.items():
                out.setdefault(k, []).extend(v)
        return out

    def _run_routed(self, i: int, docs: list[Document]) -> tuple[list[Document], list[Any], int]:
        """Run step ``i`` on the documents its source routing selects; the rest pass untouched.
        Returns (kept in input order, dropped, number of documents the step saw)."""
        only, skip = self.routes[i]
        if not only and not skip:
            kept, dropped = self._run_step(self.steps[i], docs)
            return kept, dropped, len(docs)
        sel = [bool((not only or any(fnmatch.fnmatch(d.source, p) for p in only))
                    and not any(fnmatch.fnmatch(d.source, p) for p in skip)) for d in docs]
        chosen = [d for d, s in zip(docs, sel) if s]
        kept, dropped = self._run_step(self.steps[i], chosen) if chosen else ([], [])
        # merge back in input order; documents a step emits anew (e.g. upsampled copies) go last
        kept_by_id: dict[str, list[Document]] = {}
        for d in kept:
            kept_by_id.setdefault(d.id, []).append(d)
        out: list[Document] = []
        for d, s in zip(docs, sel):
            if not s:
                out.append(d)
            elif d.id in kept_by_id:
                out += kept_by_id.pop(d.id)
        for rest in kept_by_id.values():
            out += rest
        return out, dropped, len(chosen)

    def _run_step(self, step: Any, docs: list[Document]) -> tuple[list[Document], list[Any]]:
        try:
            return step.run_batch(docs)
        except Exception:
            pass
        # The batch failed as a whole: isolate the bad document(s), one at a time.
        kept: list[Document] = []
        dropped: list[Any] = []
        for doc in docs:
            try:
                k, d = step.run_batch([doc])
                kept += k
                dropped += d
            except Exception as e:
                dropped.append(Dropped(doc, getattr(step, "name", "step"),
                                       f"error:{type(e).__name__}: {str(e)[:200]}"))
        return kept, dropped

    def process(self, key: str, path: Path) -> dict[str, list[Any]]:
        t0 = time.time()
        if self.steps and all(_passes_through(s) for s in self.steps):
            return self._pass_through(key, path, t0)
        docs = read_documents(path)
        n_in = len(docs)
        chars_in = sum(len(d.text) for d in docs)
        kept_all: list[Document] = []
        dropped_all: list[Any] = []
        per_step = {getattr(s, "name", str(i)): {"in": 0, "out": 0, "chars_in": 0, "chars_out": 0,
                                                  "chars_removed_by_source": {}} for i, s in enumerate(self.steps)}
        for i in range(0, len(docs), self.batch_size):
            cur = docs[i:i + self.batch_size]
            for j, step in enumerate(self.steps):
                if not cur:
                    break
                name = getattr(step, "name", "step")
                n_before = len(cur)
                chars_before = _chars_by_source(cur)
                cur, dropped, seen = self._run_routed(j, cur)
                per_step[name]["in"] += seen
                per_step[name]["out"] += seen - (n_before - len(cur))
                _count_chars(per_step[name], chars_before, _chars_by_source(cur))
                for d in dropped:
                    if not getattr(d, "step", ""):
                        d = Dropped(d.doc, name, getattr(d, "reason", "") or name)
                    dropped_all.append(d)
            kept_all += cur
        dropped_counts: Counter[str] = Counter(reason_key(d.step, d.reason) for d in dropped_all)
        cuts = _pop_cuts(kept_all, dropped_all)
        for c in cuts:
            if c.step in per_step:
                per_step[c.step]["cuts"] = per_step[c.step].get("cuts", 0) + 1
        cut_files = []
        if cuts and self.keep_excluded:
            from secfoundry.corpus.engine.storage import excluded_table, write_table

            write_table(excluded_table(cuts), self.store.root / "cuts" / f"{key}.parquet", self.compression)
            cut_files = [f"{key}.parquet"]
        files = [self.store.write_data(f"{key}.parquet", kept_all, self.compression)]
        excluded = [self.store.write_excluded(f"{key}.parquet", dropped_all, self.compression)] \
            if dropped_all and self.keep_excluded else []
        by_source = Counter(d.source for d in kept_all)
        stats = {"docs_in": n_in, "docs_out": len(kept_all), "chars_in": chars_in,
                 "chars_out": sum(len(d.text) for d in kept_all), "dropped": dict(dropped_counts),
                 "steps": per_step, "by_source": dict(by_source), "input": path.name,
                 "cuts": dict(Counter(reason_key(c.step, c.reason) for c in cuts)), "cut_files": cut_files,
                 "seconds": round(time.time() - t0, 3)}
        self.store.write_marker(key, files, excluded, stats)
        return _result(key, docs_in=n_in, docs_out=len(kept_all), dropped=len(dropped_all),
                       seconds=stats["seconds"], stats=json.dumps({"dropped": dict(dropped_counts)}))


    def _pass_through(self, key: str, path: Path, t0: float) -> dict[str, list[Any]]:
        """A phase whose steps keep every document unchanged (e.g. ``pack``, which only writes
        shards from its fit): commit the input file itself instead of decoding and re-encoding
        every document. Stats come from two Arrow columns."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["source", "text"])
        n = table.num_rows
        chars = int(pc.sum(pc.utf8_length(table["text"])).as_py() or 0) if n else 0
        counts = pc.value_counts(table["source"]).to_pylist() if n else []
        by_source = {str(c["values"]): int(c["counts"]) for c in counts}
        name = f"{key}.parquet"
        self.store.link_data(name, path)
        per_step = {getattr(s, "name", str(i)): {"in": n, "out": n} for i, s in enumerate(self.steps)}
        stats = {"docs_in": n, "docs_out": n, "chars_in": chars, "chars_out": chars, "dropped": {},
                 "steps": per_step, "by_source": by_source, "input": path.name,
                 "seconds": round(time.time() - t0, 3)}
        self.store.write_marker(key, [name], [], stats)
        return _result(key, docs_in=n, docs_out=n, dropped=0, seconds=stats["seconds"],
                       stats=json.dumps({"dropped": {}}))


def _chars_by_source(docs: list[Document]) -> Counter[str]:
    c: Counter[str] = Counter()
    for d in docs:
        c[d.source] += len(d.text)
    return c


def _count_chars(acc: dict[str, Any], before: Counter[str], after: Counter[str]) -> None:
    """Characters into and out of one step, and removed per source (drops and cuts alike)."""
    acc["chars_in"] += sum(before.values())
    acc["chars_out"] += sum(after.values())
    by = acc["chars_removed_by_source"]
    for src, n in before.items():
        if n > after.get(src, 0):
            by[src] = by.get(src, 0) + n - after.get(src, 0)


def _pop_cuts(kept: list[Document], dropped: list[Any]) -> list[Dropped]:
    """The spans steps cut out of kept documents (``step.record_cut``) as audit rows: the removed
    text, ``<id>#cut<k>``, the evidence in metadata. Dropped documents just lose the note (their
    whole text is in the exclusions already)."""
    from secfoundry.corpus.step import CUTS_KEY

    out: list[Dropped] = []
    for d in dropped:
        d.doc.metadata.pop(CUTS_KEY, None)
    for d in kept:
        for k, c in enumerate(d.metadata.pop(CUTS_KEY, None) or []):
            c = dict(c)
            text, step, reason = c.pop("text", ""), c.pop("step", ""), c.pop("reason", "")
            cut = Document(id=f"{d.id}#cut{k}", text=text, source=d.source, url=d.url, license=d.license,
                           title=d.title, version=d.version, metadata={"cut_of": d.id, **c})
            out.append(Dropped(cut, step, reason))
    return out


def _passes_through(step: Any) -> bool:
    """A global step that does not override ``run_batch`` keeps every document as it is."""
    from secfoundry.corpus.step import GlobalStep

    return step_kind(step) == "global" and type(step).run_batch is GlobalStep.run_batch


_CACHE: dict[str, Any] = {}


def run_items(batch: dict[str, Any], *, kind: str, config: dict[str, Any]) -> dict[str, list[Any]]:
    """The ``map_batches`` function: build (or reuse) this process's worker for the phase."""
    key = json.dumps([kind, config], sort_keys=True, default=str)
    worker = _CACHE.get(key)
    if worker is None:
        _CACHE.clear()  # one phase at a time: free the previous phase's models
        worker = (CollectWorker if kind == "collect" else PhaseWorker)(**config)
        _CACHE[key] = worker
    return worker(batch)
