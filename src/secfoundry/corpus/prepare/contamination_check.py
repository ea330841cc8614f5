"""Which benchmark items a corpus contains, and where: ``secfoundry eval contamination``.

The same item-level matching as the ``decontaminate`` step (``prepare/contamination.py``), run
as a read-only audit over any corpus: a corpus run directory (its last phase, or ``--phase``),
a folder or glob of Parquet / JSONL(.gz) / text / Markdown files, or one file. Two passes: the
first counts how many documents hold each benchmark n-gram (so corpus boilerplate is not
evidence), the second reports every item found, with the document, the span and why.
"""

from __future__ import annotations

import glob
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from secfoundry.corpus.prepare import contamination as C
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError

SNIPPET = 160


@dataclass
class Finding:
    item: str  # "<benchmark>:<id>"
    benchmarks: list[str]
    doc: str
    source: str
    file: str
    why: str
    spans: list[list[int]]
    snippet: str


@dataclass
class ContaminationReport:
    corpus: str
    documents: int = 0
    benchmarks: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> items, found, share
    missing: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    index: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self, examples: int = 3) -> str:
        lines = [f"# Benchmark contamination of {self.corpus}", "",
                 f"{self.documents:,} documents checked.", "",
                 "| benchmark | items | found in corpus | share | documents |", "|---|---:|---:|---:|---:|"]
        for name, b in sorted(self.benchmarks.items()):
            lines.append(f"| {name} | {b['items']:,} | {b['found']:,} | {100 * b['share']:.2f}% | {b['documents']:,} |")
        for name, why in sorted(self.missing.items()):
            lines.append(f"| {name} | not loaded: {why} | | | |")
        by_bench: dict[str, list[Finding]] = {}
        for f in self.findings:
            for b in f.benchmarks:
                by_bench.setdefault(b, []).append(f)
        for name, fs in sorted(by_bench.items()):
            lines += ["", f"## {name}: first {min(examples, len(fs))} of {len(fs)} findings", ""]
            for f in fs[:examples]:
                lines.append(f"- `{f.item}` in `{f.doc}` ({f.source}, {Path(f.file).name}) chars "
                             f"{f.spans[0][0] if f.spans else '-'}..{f.spans[-1][1] if f.spans else '-'}: {f.why} "
                             f"— \u201c{f.snippet}\u201d")
        return "\n".join(lines) + "\n"


def corpus_files(corpus: str | Path, phase: str | None = None) -> list[Path]:
    """The files of a corpus: a run directory's committed partitions (last phase unless
    ``phase``), a folder (Parquet, JSONL, text, Markdown; recursive), a glob, or one file."""
    p = Path(corpus)
    if p.is_dir() and any(p.glob("[0-9][0-9]-*/markers")):
        from secfoundry.corpus.engine.storage import PhaseStore
        from secfoundry.corpus.pipeline import _phase

        return PhaseStore(_phase(p, phase)).committed_files()
    if p.is_dir():
        exts = (".parquet", ".jsonl", ".jsonl.gz", ".txt", ".md")
        return sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(exts))
    if p.is_file():
        return [p]
    files = sorted(Path(f) for f in glob.glob(str(corpus), recursive=True))
    if not files:
        raise InputError("no corpus files (a run directory, a folder, a glob or a file)", file=str(corpus))
    return files


def iter_corpus(files: list[Path], text_field: str = "text", quarantine: Any = None) -> Iterator[tuple[Path, Document]]:
    from secfoundry.corpus.collect.jsonl import iter_jsonl_documents
    from secfoundry.corpus.collect.parquet import iter_parquet_documents

    for f in files:
        name = f.name
        if name.endswith(".parquet"):
            docs = iter_parquet_documents(str(f), text_field=text_field, quarantine=quarantine)
        elif name.endswith((".jsonl", ".jsonl.gz")):
            docs = iter_jsonl_documents(str(f), text_field=text_field, id_field="id", source="jsonl",
                                        quarantine=quarantine)
        else:
            docs = iter([Document(id=str(f), text=f.read_text(encoding="utf-8", errors="replace"), source="file")])
        for d in docs:
            yield f, d


def check_corpus(corpus: str | Path, benchmarks: list[str] | None = None, *, data_dir: str | None = None,
                 phase: str | None = None, text_field: str = "text", cfg: C.MatchConfig | None = None,
                 download: bool = False) -> ContaminationReport:
    """Every item of ``benchmarks`` (default: all the harness knows) found in ``corpus``."""
    from secfoundry.core.errors import Quarantine

    cfg = cfg or C.MatchConfig()
    files = corpus_files(corpus, phase)
    items, info = C.load_benchmark_items(benchmarks, data_dir, cfg.min_words, download)
    if not items:
        raise InputError(f"no benchmark could be loaded: {info['missing']}")
    ix = C.ItemIndex(items, cfg)
    cand = ix.build_items()
    q = Quarantine()
    # pass 1: document frequency of benchmark n-grams (corpus boilerplate is not evidence)
    hits, n_docs = [], 0
    for _, d in iter_corpus(files, text_field, q):
        n_docs += 1
        g = ix.text_grams(d.text)
        hits.append(C.in_sorted(g, cand))
    if hits:
        u, cnt = np.unique(np.concatenate(hits), return_counts=True)
        freq = np.zeros(len(cand), dtype=np.int64)
        freq[np.searchsorted(cand, u)] = cnt
        ix.apply_corpus_counts(cand, freq)
    cves: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        for c in it.cves:
            cves.setdefault(c, []).append(i)
    rep = ContaminationReport(corpus=str(corpus), documents=n_docs, missing=info["missing"],
                              index={k: v for k, v in ix.stats.items()})
    found: dict[int, set[str]] = {}
    # pass 2: findings
    for f, d in iter_corpus(files, text_field, None):
        about = C.document_cves(d.id, d.title, d.text, d.metadata)
        for m in ix.find(d.text):
            if C.entity_guarded(items[m.item], about, m):
                continue
            _add(rep, found, items[m.item], m.item, d, f, m.why, [list(s) for s in m.spans])
        if cves:
            for cve in about & cves.keys():
                for i in cves[cve]:
                    _add(rep, found, items[i], i, d, f, f"document about {cve}", [])
    for name, n in info["loaded"].items():
        ids = {i for i, it in enumerate(items) if any(o.rsplit(":", 1)[0] == name for o in it.owners)}
        hit = {i for i in ids if i in found}
        docs = set().union(*(found[i] for i in hit)) if hit else set()
        rep.benchmarks[name] = {"items": n, "found": len(hit), "share": len(hit) / max(1, n), "documents": len(docs)}
    rep.index["quarantined"] = len(q)
    return rep


def _add(rep: ContaminationReport, found: dict[int, set[str]], it: C.BenchItem, i: int, d: Document, f: Path,
         why: str, spans: list[list[int]]) -> None:
    found.setdefault(i, set()).add(d.id)
    a, b = (spans[0][0], spans[0][1]) if spans else (0, min(len(d.text), SNIPPET))
    snippet = " ".join(d.text[a:b].split())[:SNIPPET]
    rep.findings.append(Finding(it.key, sorted({o.rsplit(":", 1)[0] for o in it.owners}), d.id, d.source, str(f),
                                why, spans, snippet))


def write_report(rep: ContaminationReport, out: Path, examples: int = 3) -> list[Path]:
    """``out`` as JSON (``.json``) or Markdown (anything else; a JSON twin beside it)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    js = out if out.suffix == ".json" else out.with_suffix(".json")
    js.write_text(json.dumps(rep.to_dict(), indent=1))
    if out.suffix == ".json":
        return [js]
    out.write_text(rep.markdown(examples))
    return [out, js]
