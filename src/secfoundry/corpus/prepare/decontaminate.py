"""Benchmark decontamination: remove the corpus text that *is* a benchmark item, and nothing else.

Per document, in order:

* **date cutoff** (optional): a document dated on/after ``date_cutoff`` by its source's date
  field (``prepare/dates.py``: KEV dateAdded, ATT&CK created/modified, OSV published/modified,
  CVE published, crawled pages Last-Modified/WARC-Date, ...) is dropped (``decontam:date``);
* **CVE id** (CTIBench RCM / RCM-2021 / VSP, which ask CVE -> CWE and CVE -> CVSS): a document
  *about* one of those CVEs (its record id, title, aliases or first line name it) is dropped
  (``decontam:cve:<benchmark>``); in any other document only the sentences naming it are cut;
* **item match** (``prepare/contamination.py``): the spans that contain a substantial share of
  one item's informative n-grams (templates shared by many items or common in the corpus do not
  count), most of its words in an edited copy, a long verbatim run of them, or a short question
  verbatim, are cut; the document is dropped (``decontam:ngram:<benchmark>``) only when almost
  nothing is left. A CVE record is not matched to an item about *another* CVE unless it holds
  the item's text in full (entity guard: one vendor template, two CVEs).

Every decision keeps its evidence: dropped documents carry ``metadata.decontaminated``; each cut
span is written by the engine to the phase's ``cuts/`` Parquet (document, span, removed text,
item, benchmark, why) and counted per source in the report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from secfoundry.corpus.prepare import contamination as C
from secfoundry.corpus.prepare.dates import document_date
from secfoundry.corpus.step import Dropped, GlobalContext, GlobalStep, record_cut
from secfoundry.core.documents import Document

CVE_RE = C.CVE_RE
CVE_BENCHMARKS = C.CVE_BENCHMARKS


@dataclass
class DecontaminateConfig:
    benchmarks: list[str] = field(default_factory=list)  # empty: every benchmark that loads
    ngram: int = 13
    short_ngram: int = 8  # n-gram size for items whose question is under short_item_tokens words
    short_item_tokens: int = 40
    min_words: int = 8  # benchmark texts shorter than this are not indexed (too generic)
    min_share: float = 0.5  # share of an item's informative n-grams that makes a match
    min_run: int = 20  # or a verbatim run of this many informative n-grams
    bench_template_items: int = 3  # n-grams shared by this many items are templates
    corpus_template_docs: int = 20  # n-grams in this many corpus documents are templates
    mode: str = "span"  # span: cut the matching spans | document: drop the whole document
    min_keep_words: int = 20  # a document left with fewer words after cutting is dropped
    cve_match: bool = True
    date_cutoff: str | None = None  # ISO date; documents dated on/after it are dropped
    date_basis: str = "published"  # published (first seen) | modified (last change)
    undated: str = "keep"  # keep | drop documents with no date when a cutoff is set
    data_dir: str | None = None  # benchmark data dir (default: the eval harness's lookup)
    download: bool = False  # fetch download-only benchmarks (CyberMetric-2000/10000) when not on disk

    def match_config(self) -> C.MatchConfig:
        return C.MatchConfig(ngram=self.ngram, short_ngram=self.short_ngram, short_item_tokens=self.short_item_tokens,
                             min_words=self.min_words, min_share=self.min_share,
                             min_run=self.min_run, bench_template_items=self.bench_template_items,
                             corpus_template_docs=self.corpus_template_docs)


def _count_partition(path: str, cand_path: str, sizes: list[int]) -> dict[str, Any]:
    """Candidate grams present in each document of one partition (concatenated, unique per
    document; ``lens`` says how many per document): the corpus document frequency of benchmark
    grams. Also, per document, whether it holds a short question verbatim (``short``): with the
    grams that stay informative, that tells the apply pass which documents can match an item at
    all, so it tokenises only those."""
    import pyarrow.parquet as pq

    z = np.load(cand_path)
    cand = z["cand"]
    bits = C.gram_bitmap(cand)
    short = {int(k[5:]): z[k] for k in z.files if k.startswith("short") and k[5:].isdigit()}
    first = z["short_first"]
    out, lens, ids, short_hit = [], [], [], []
    for batch in pq.ParquetFile(path).iter_batches(columns=["id", "text"], batch_size=2048):
        for doc_id, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            th = C.token_hashes(C.token_list(text or ""))
            g = C.uniq(np.concatenate(C.window_hashes_multi(th, sizes)))
            g = g[bits[g & C.BITS_MASK]]
            h = C.in_sorted(g, cand)
            out.append(h)
            lens.append(len(h))
            ids.append(doc_id)
            short_hit.append(C.has_short_question(th, short, first))
    return {"hits": np.concatenate(out) if out else np.zeros(0, dtype=np.uint64),
            "lens": np.asarray(lens, dtype=np.int64), "ids": ids, "short": np.asarray(short_hit, dtype=bool)}


class Decontaminate(GlobalStep):
    name = "decontaminate"

    def __init__(self, config: DecontaminateConfig | None = None):
        self.config = config or DecontaminateConfig()
        if self.config.mode == "paragraph":  # the earlier name of span mode
            self.config.mode = "span"
        self.index: C.ItemIndex | None = None
        self.cve_owner: dict[str, list[int]] = {}
        self.info: dict[str, Any] = {}
        self.may_match: set[str] | None = None  # documents the item matcher must see (None: all)

    # -- index ---------------------------------------------------------------------------------
    def prebuild(self) -> dict[str, Any]:
        """The benchmark items indexed (no corpus needed): the engine may run this ahead, beside the
        previous phase's serial work, and pass it to ``fit`` as ``ctx.prebuilt``."""
        c = self.config
        items, info = C.load_benchmark_items(c.benchmarks or None, c.data_dir, c.min_words, c.download)
        index = C.ItemIndex(items, c.match_config())
        return {"index": index, "info": info, "cand": index.build_items()}

    def build(self, ctx: GlobalContext | None = None) -> dict[str, Any]:
        c = self.config
        pre = (ctx.prebuilt if ctx is not None else None) or self.prebuild()
        self.index, info, cand = pre["index"], dict(pre["info"]), pre["cand"]
        self.may_match = None
        if ctx is not None and len(cand):
            cand_path = ctx.state_dir / "candidates.npz"
            np.savez(cand_path, cand=cand, short_first=self.index.short_first,
                     **{f"short{n}": h for n, (h, _) in self.index.short.items()})
            parts = list(ctx.map_partitions(_count_partition, str(cand_path), self.index.sizes))
            allh = np.concatenate([p["hits"] for p in parts]) if parts else np.zeros(0, dtype=np.uint64)
            u, cnt = np.unique(allh, return_counts=True)
            freq = np.zeros(len(cand), dtype=np.int64)
            freq[np.searchsorted(cand, u)] = cnt
            self.index.apply_corpus_counts(cand, freq)
            info["corpus_docs"] = sum(len(p["ids"]) for p in parts)
            # the documents that hold an informative gram or a short question: the only ones
            # ItemIndex.find can match (the rest get the CVE-id check only)
            lens = np.concatenate([p["lens"] for p in parts] or [np.zeros(0, dtype=np.int64)])
            flag = np.concatenate([p["short"] for p in parts] or [np.zeros(0, dtype=bool)])
            flag[np.repeat(np.arange(len(lens)), lens)[C.member(allh, self.index.gram)]] = True
            ids = [i for p in parts for i in p["ids"]]
            self.may_match = {ids[k] for k in np.flatnonzero(flag)}
            info["documents_to_match"] = len(self.may_match)
            cand_path.unlink(missing_ok=True)
        self._cves()
        self.info = {**info, **self.index.stats, "cves": len(self.cve_owner), "config": asdict(c)}
        return self.info

    def _cves(self) -> None:
        assert self.index is not None
        self.cve_owner = {}
        if self.config.cve_match:
            for i, it in enumerate(self.index.items):
                for cve in it.cves:
                    self.cve_owner.setdefault(cve, []).append(i)

    def fit(self, ctx: GlobalContext) -> None:
        info = self.build(ctx)
        assert self.index is not None
        np.savez(ctx.state_dir / "index.npz", **self.index.arrays())
        (ctx.state_dir / "items.json").write_text(json.dumps([it.to_dict() for it in self.index.items]))
        (ctx.state_dir / "index.json").write_text(json.dumps(info, default=str))
        if self.may_match is not None:
            (ctx.state_dir / "may_match.json").write_text(json.dumps(sorted(self.may_match)))
        (ctx.artifacts_dir / "decontamination-index.json").write_text(json.dumps(info, indent=1, default=str))

    def load(self, state_dir: Path) -> None:
        items = [C.BenchItem(**d) for d in json.loads((Path(state_dir) / "items.json").read_text())]
        self.info = json.loads((Path(state_dir) / "index.json").read_text())
        with np.load(Path(state_dir) / "index.npz") as z:
            arrays = {k: z[k] for k in z.files}
        self.index = C.ItemIndex.from_arrays(items, self.config.match_config(), arrays, self.info)
        self._cves()
        mm = Path(state_dir) / "may_match.json"
        self.may_match = set(json.loads(mm.read_text())) if mm.exists() else None

    # -- apply ---------------------------------------------------------------------------------
    def _date_drop(self, doc: Document) -> str | None:
        c = self.config
        if not c.date_cutoff:
            return None
        date, fld = document_date(doc.source, doc.metadata, c.date_basis)
        if date is None:
            return "decontam:undated" if c.undated == "drop" else None
        if date >= c.date_cutoff[:10]:
            doc.metadata["decontaminated"] = [{"why": f"{fld} {date} on/after cutoff {c.date_cutoff[:10]}"}]
            return "decontam:date"
        return None

    def _about(self, doc: Document, cve: str) -> bool:
        return cve in C.document_cves(doc.id, doc.title, doc.text, doc.metadata)

    def evidence(self, doc: Document, text: str) -> list[dict[str, Any]]:
        """Everything in ``text`` that contaminates a benchmark item: item, benchmarks, why, spans."""
        assert self.index is not None
        out = []
        if self.cve_owner:
            for cve in sorted({m.upper() for m in CVE_RE.findall(text)} & self.cve_owner.keys()):
                for i in self.cve_owner[cve]:
                    it = self.index.items[i]
                    about = self._about(doc, cve)
                    spans = [] if about else _paragraphs_naming(text, cve)
                    out.append({"item": it.key, "benchmarks": _benches(it), "why": f"cve {cve}" + (
                        " (the document is about it)" if about else " (mentioned)"), "spans": spans,
                        "whole": about})
        if self.may_match is not None and doc.id not in self.may_match and text is doc.text:
            return out  # no informative gram and no short question of any item (counted in fit)
        about = C.document_cves(doc.id, doc.title, text, doc.metadata)
        for m in self.index.find(text):
            it = self.index.items[m.item]
            if C.entity_guarded(it, about, m):
                continue
            out.append({"item": it.key, "benchmarks": _benches(it), "why": m.why, "share": m.share,
                         "spans": [list(s) for s in m.spans], "whole": False})
        return out

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        kept, dropped = [], []
        c = self.config
        for d in docs:
            reason = self._date_drop(d)
            if reason:
                dropped.append(Dropped(d, self.name, reason))
                continue
            ev = self.evidence(d, d.text)
            if not ev:
                kept.append(d)
                continue
            whole = [e for e in ev if e["whole"]]
            if whole or c.mode == "document":
                first = (whole or ev)[0]
                kind = "cve" if first["why"].startswith("cve") else "ngram"
                d.metadata["decontaminated"] = [{k: v for k, v in e.items() if k != "whole"} for e in ev[:20]]
                dropped.append(Dropped(d, self.name, f"decontam:{kind}:{first['benchmarks'][0]}"))
                continue
            spans = C._merge(tuple(s) for e in ev for s in e["spans"])
            original = d.text
            new = C.cut_spans(original, spans)
            for e in ev:
                kind = "cve" if e["why"].startswith("cve") else "ngram"
                for a, b in e["spans"]:
                    record_cut(d, self.name, f"decontam:{kind}:{e['benchmarks'][0]}", original[a:b],
                               {"item": e["item"], "benchmarks": e["benchmarks"], "why": e["why"], "start": a, "end": b})
            d.metadata["decontaminated"] = [{k: v for k, v in e.items() if k != "whole"} for e in ev[:20]]
            if len(C.token_list(new)) < min(c.min_keep_words, len(C.token_list(original))) or not new.strip():
                dropped.append(Dropped(d, self.name, f"decontam:ngram:{ev[0]['benchmarks'][0]}"))
                continue
            d.text = new
            kept.append(d)
        return kept, dropped


def _benches(it: C.BenchItem) -> list[str]:
    return sorted({o.rsplit(":", 1)[0] for o in it.owners})


def _paragraphs_naming(text: str, cve: str) -> list[list[int]]:
    """Character spans of the sentences (or lines) that name ``cve``: what a document that is not
    about the CVE says about it, and nothing else."""
    import re

    out: list[list[int]] = []
    for m in re.finditer(re.escape(cve), text, flags=re.IGNORECASE):
        a = max(text.rfind("\n", 0, m.start()), *(text.rfind(p, 0, m.start()) + 1 for p in (". ", "! ", "? ")))
        a = a + 1 if a >= 0 and text[a:a + 1] in "\n " else max(a, 0)
        ends = [e for e in (text.find("\n", m.end()), *(text.find(p, m.end()) for p in (". ", "! ", "? "))) if e >= 0]
        b = min(ends) + 1 if ends else len(text)
        a, b = C._widen(text, a, b)
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out
