"""Audit the process filters: for each filter, the share of each source's documents it would drop.

Every filter is run on every document independently ("would drop"), next to the end-to-end
outcome of the default step chain (what the pipeline actually drops, with routing and
high-value protection). The ``unprotected`` quality columns show what a generic pipeline's
checks would do without routing/protection — the difference is what this stage saves.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from secfoundry.corpus.process.high_value import is_high_value
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError


def load_documents(path: str | Path, limit: int | None = None) -> Iterator[Document]:
    """Documents from a Parquet file/directory or a JSONL(.gz) file of Document rows."""
    p = Path(path)
    n = 0
    if p.is_dir() or p.suffix == ".parquet":
        import pyarrow.parquet as pq

        files = sorted(p.rglob("*.parquet")) if p.is_dir() else [p]
        for f in files:
            table = pq.read_table(f)
            for i, row in enumerate(table.to_pylist()):
                if limit is not None and n >= limit:
                    return
                try:
                    yield Document.from_row(row)
                    n += 1
                except (KeyError, TypeError, ValueError) as e:
                    raise InputError(f"bad document row: {e}", file=str(f), row=i) from e
        return
    from secfoundry.corpus.collect.jsonl import json_lines

    for i, line in json_lines(p, errors="strict"):
        if limit is not None and n >= limit:
            return
        try:
            row = json.loads(line)
            if "id" not in row:
                row["id"] = f"{p.name}:{i}"
            yield Document.from_row(row)
            n += 1
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise InputError(f"bad document row: {e}", file=str(p), row=i) from e


def source_documents(mirror: Path, sources: list[str] | None = None, limit: int | None = None,
                     errors: list[str] | None = None) -> Iterator[Document]:
    """Documents rendered by the registered connectors from a mirror (``limit`` per source)."""
    from secfoundry.sources.base import Quarantine, registry

    reg = registry()
    for name in sources or sorted(reg):
        if name not in reg:
            raise InputError(f"unknown source {name!r}; known: {', '.join(sorted(reg))}", field="sources")
        try:
            src = reg[name]()
            snap = src.fetch(mirror)
            n = 0
            for doc in src.documents(snap, Quarantine()):
                yield doc
                n += 1
                if limit is not None and n >= limit:
                    break
        except Exception as e:  # one broken connector must not stop the audit
            if errors is not None:
                errors.append(f"{name}: {type(e).__name__}: {e}")


def seed_documents(seed: str | Path | None = None, label: int = 1) -> Iterator[Document]:
    """relevance-seed paragraphs as documents of source ``seed:<source>``."""
    from secfoundry.corpus.process.relevance_data import load_seed

    for i, e in enumerate(load_seed(seed)):
        if e.label == label:
            yield Document(id=f"seed:{i}", text=e.text, source=f"seed:{e.source}")


@dataclass
class AuditResult:
    filters: list[str]
    n: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    drops: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    examples: dict[str, list[tuple[str, str, str]]] = field(default_factory=lambda: defaultdict(list))
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def rate(self, source: str, flt: str) -> float:
        return self.drops[source][flt] / self.n[source] if self.n[source] else 0.0

    def high_value_rate(self, flt: str = "end-to-end") -> tuple[int, int]:
        srcs = [s for s in self.n if is_high_value(s)]
        return sum(self.drops[s][flt] for s in srcs), sum(self.n[s] for s in srcs)


class Auditor:
    """Runs every process filter on each document; ``steps`` are the default chain (``PROCESS_STEPS``)."""

    def __init__(self, config: dict | None = None, relevance: bool = True):
        from secfoundry.corpus.engine.recipe import process_steps
        from secfoundry.corpus.process.quality import QualityStep

        config = dict(config or {})
        if not relevance:
            config["relevance"] = False
        self.steps = process_steps(config)
        self.by_name = {s.name: s for s in self.steps}
        self.quality: QualityStep = self.by_name["quality"]  # type: ignore[assignment]
        self.filters = (["extract"] + (["langid"] if "langid" in self.by_name else [])
                        + ["keywords"] + (["relevance", "relevance (classifier alone)"] if relevance else [])
                        + ["quality"] + [f"quality unprotected: {c}" for c in self.quality.CHECKS]
                        + ["generic: fastText en<0.65 on raw text", "end-to-end"])

    def audit(self, docs: Iterable[Document], batch_size: int = 256, max_examples: int = 3) -> AuditResult:
        res = AuditResult(self.filters)
        t0 = time.time()
        batch: list[Document] = []
        for d in docs:
            batch.append(d)
            if len(batch) >= batch_size:
                self._batch(batch, res, max_examples)
                batch = []
        if batch:
            self._batch(batch, res, max_examples)
        res.seconds = round(time.time() - t0, 2)
        return res

    def _mark(self, res: AuditResult, doc: Document, flt: str, reason: str, max_examples: int) -> None:
        res.drops[doc.source][flt] += 1
        key = f"{doc.source}|{flt}"
        if len(res.examples[key]) < max_examples:
            res.examples[key].append((doc.id, reason, doc.text[:200].replace("\n", " ")))

    def _batch(self, docs: list[Document], res: AuditResult, max_examples: int) -> None:
        import copy

        for d in docs:
            res.n[d.source] += 1
        # end to end: the chain as the pipeline runs it
        survivors = [copy.deepcopy(d) for d in docs]
        for step in self.steps:
            survivors, dropped = step.run_batch(survivors)
            for dr in dropped:
                self._mark(res, dr.doc, "end-to-end", f"{dr.step}:{dr.reason}", max_examples)
        # each filter alone, on the extracted + routed document
        extract, route = self.by_name["extract"], self.by_name["contenttype"]
        prepared: list[Document] = []
        for d in docs:
            dec = extract.safe_apply(copy.deepcopy(d))
            if dec.doc is None:
                self._mark(res, d, "extract", dec.reason or "", max_examples)
                continue
            prepared.append(route.safe_apply(dec.doc).doc or dec.doc)
        for name in ("langid", "keywords", "quality"):
            if name not in self.by_name:
                continue
            _, dropped = self.by_name[name].run_batch([copy.deepcopy(d) for d in prepared])
            for dr in dropped:
                self._mark(res, dr.doc, name, dr.reason, max_examples)
        if "relevance" in self.by_name:
            rel = self.by_name["relevance"]
            _, dropped = rel.run_batch([copy.deepcopy(d) for d in prepared])
            for dr in dropped:
                self._mark(res, dr.doc, "relevance", dr.reason, max_examples)
            probs = rel.model.predict_proba([d.text for d in prepared]) if prepared else []
            for d, p in zip(prepared, probs):
                if p < rel.threshold:
                    self._mark(res, d, "relevance (classifier alone)", f"{p:.2f}", max_examples)
        from secfoundry.corpus.process.langid import detect

        for d in prepared:
            en = detect(d.text).get("en", 0.0)
            if en < 0.65:
                self._mark(res, d, "generic: fastText en<0.65 on raw text", f"en={en:.2f}", max_examples)
            rep = self.quality.audit(d)
            for check in rep.failed:
                self._mark(res, d, f"quality unprotected: {check}", check, max_examples)


def audit_filters(mirror: Path | None = None, inputs: Iterable[Path] = (), sources: list[str] | None = None,
          limit: int = 2000, seed: bool = False, relevance: bool = True) -> AuditResult:
    """Audit the filters on connector documents from ``mirror``, document files and/or the
    relevance-seed paragraphs; connectors that cannot be read are listed in ``errors``."""
    import itertools

    if mirror is None and not inputs and not seed:
        raise InputError("nothing to audit: give a mirror, input files or the seed paragraphs")
    errors: list[str] = []
    streams: list[Iterable[Document]] = []
    if mirror is not None:
        streams.append(source_documents(mirror, sources, limit, errors))
    streams += [load_documents(p, limit) for p in inputs]
    if seed:
        streams.append(seed_documents())
    res = Auditor(relevance=relevance).audit(itertools.chain(*streams))
    res.errors = errors
    return res


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x else "0"


def render_markdown(res: AuditResult) -> str:
    cols = [f for f in res.filters if any(res.drops[s][f] for s in res.n) or not f.startswith("quality unprotected")]
    lines = ["| source | docs | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for s in sorted(res.n):
        hv = " (high-value)" if is_high_value(s) else ""
        lines.append(f"| {s}{hv} | {res.n[s]} | " + " | ".join(_pct(res.rate(s, f)) for f in cols) + " |")
    dropped, total = res.high_value_rate()
    out = ["# Filter audit", "",
           f"{sum(res.n.values())} documents from {len(res.n)} sources in {res.seconds}s. Cells: share of the "
           "source's documents the filter would drop on its own; `end-to-end` is the default step chain "
           "(routing and protection included); `quality unprotected` columns are the checks before "
           "routing/protection, as a generic pipeline would apply them; `generic: fastText` is FineWeb-style "
           "language ID on the whole text.", ""]
    if total:
        out += [f"**High-value sources, end to end: {dropped}/{total} dropped "
                f"({100 * dropped / total:.2f}%).**", ""]
    out += lines
    if res.errors:
        out += ["", "Sources that could not be read:", *[f"- {e}" for e in res.errors]]
    ex = [(k, v) for k, v in res.examples.items() if k.endswith("|end-to-end")]
    if ex:
        out += ["", "## End-to-end drop examples", ""]
        for k, v in sorted(ex)[:40]:
            for doc_id, reason, text in v:
                out.append(f"- `{doc_id}` ({reason}): {text[:160]}")
    return "\n".join(out) + "\n"


def render_html(res: AuditResult) -> str:
    """The audit matrix as a page on the core report shell (cells shaded by drop rate)."""
    from secfoundry.core.report import Page, render_html as render_template

    rows = [(s, res.n[s], [(min(res.rate(s, f) * 2, 0.8), _pct(res.rate(s, f))) for f in res.filters])
            for s in sorted(res.n)]
    dropped, total = res.high_value_rate()
    return render_template("audit.html.j2", package="secfoundry.corpus",
                           page=Page("secfoundry filter audit", "Filter audit"), columns=res.filters, rows=rows,
                           docs=sum(res.n.values()), sources=len(res.n), seconds=res.seconds, hv_dropped=dropped,
                           hv_total=total, hv_pct=f"{100 * dropped / max(total, 1):.2f}")
