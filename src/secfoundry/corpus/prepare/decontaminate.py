"""Benchmark decontamination: remove corpus text that overlaps what the eval harness measures.

Three checks, each reported with the benchmark it protects:

* word n-gram overlap (default 13-grams, as GPT-3/Llama reports use) with every benchmark
  question and option text known to ``secfoundry.eval.benchmarks`` — the overlapping
  paragraphs are removed (``mode: paragraph``) or the whole document is dropped (``mode: document``);
* exact CVE-id match for CTIBench RCM/VSP items: a document that mentions one of those CVEs
  would teach the answer (CVE -> CWE, CVE -> CVSS vector), so it is dropped;
* an optional date cutoff on the document's own date metadata (published/date fields).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from secfoundry.corpus.step import Dropped, GlobalContext, GlobalStep
from secfoundry.corpus.prepare.dedup_paragraph import split_paragraphs
from secfoundry.corpus.prepare.text import ngram_hashes, words
from secfoundry.core.documents import Document

CVE_RE = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)
CVE_BENCHMARKS = ("ctibench-rcm", "ctibench-rcm-2021", "ctibench-vsp")
DATE_FIELDS = ("published", "date_published", "datePublished", "date", "created")


@dataclass
class DecontaminateConfig:
    benchmarks: list[str] = field(default_factory=list)  # empty: every benchmark that loads
    ngram: int = 13
    min_words: int = 8  # benchmark texts shorter than this are not indexed (too generic)
    mode: str = "paragraph"  # paragraph | document
    cve_match: bool = True
    date_cutoff: str | None = None  # ISO date; documents dated on/after it are dropped
    data_dir: str | None = None  # benchmark data dir (default: the eval harness's lookup)


def benchmark_texts(cfg: DecontaminateConfig) -> tuple[dict[str, list[str]], dict[str, set[str]], list[str]]:
    """Texts and CTIBench CVE ids per benchmark, plus the names that could not be loaded."""
    from secfoundry.eval.benchmarks import get_task, list_tasks

    names = cfg.benchmarks or list_tasks()
    texts: dict[str, list[str]] = {}
    cves: dict[str, set[str]] = {}
    missing: list[str] = []
    for name in names:
        try:
            items = get_task(name).load(Path(cfg.data_dir) if cfg.data_dir else None)
        except Exception:  # e.g. MMLU needs a user-provided copy
            missing.append(name)
            continue
        out = []
        for it in items:
            out.append(it.question)
            out.extend(v for v in (it.options or {}).values())
            if isinstance(it.gold, str) and len(it.gold.split()) >= cfg.min_words:
                out.append(it.gold)
        texts[name] = [t for t in out if t and len(t.split()) >= cfg.min_words]
        if cfg.cve_match and name in CVE_BENCHMARKS:
            ids = set()
            for it in items:
                ids.update(m.upper() for m in CVE_RE.findall(" ".join([it.question, str(it.meta.get("url", ""))])))
            cves[name] = ids
    return texts, cves, missing


class Decontaminate(GlobalStep):
    name = "decontaminate"

    def __init__(self, config: DecontaminateConfig | None = None):
        self.config = config or DecontaminateConfig()
        self.hashes = np.zeros(0, dtype=np.uint64)
        self.owner = np.zeros(0, dtype=np.int32)
        self.names: list[str] = []
        self.cve_owner: dict[str, str] = {}

    # -- index ---------------------------------------------------------------------------------
    def build(self) -> dict:
        c = self.config
        texts, cves, missing = benchmark_texts(c)
        self.names = sorted(texts)
        hs, owners = [], []
        for k, name in enumerate(self.names):
            for t in texts[name]:
                h = ngram_hashes(words(t), c.ngram)
                hs.append(h)
                owners.append(np.full(len(h), k, dtype=np.int32))
        h = np.concatenate(hs) if hs else np.zeros(0, dtype=np.uint64)
        o = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int32)
        order = np.argsort(h, kind="stable")
        self.hashes, self.owner = h[order], o[order]
        self.cve_owner = {cve: name for name, ids in sorted(cves.items()) for cve in ids}
        return {"benchmarks": self.names, "missing": missing, "ngrams": int(len(h)), "cves": len(self.cve_owner)}

    def fit(self, ctx: GlobalContext) -> None:
        info = self.build()
        np.savez(ctx.state_dir / "index.npz", hashes=self.hashes, owner=self.owner)
        (ctx.state_dir / "index.json").write_text(json.dumps({**info, "names": self.names, "cve_owner": self.cve_owner}))

    def load(self, state_dir: Path) -> None:
        z = np.load(Path(state_dir) / "index.npz")
        self.hashes, self.owner = z["hashes"], z["owner"]
        meta = json.loads((Path(state_dir) / "index.json").read_text())
        self.names, self.cve_owner = meta["names"], meta["cve_owner"]

    # -- apply ---------------------------------------------------------------------------------
    def matches(self, text: str) -> set[str]:
        h = ngram_hashes(words(text), self.config.ngram)
        if len(h) == 0 or len(self.hashes) == 0:
            return set()
        pos = np.searchsorted(self.hashes, h)
        pos = np.minimum(pos, len(self.hashes) - 1)
        hit = self.hashes[pos] == h
        return {self.names[k] for k in self.owner[pos[hit]]}

    def _dated_after_cutoff(self, doc: Document) -> str | None:
        if not self.config.date_cutoff:
            return None
        for f in DATE_FIELDS:
            v = doc.metadata.get(f)
            if isinstance(v, str) and len(v) >= 10 and v[:10] >= self.config.date_cutoff[:10]:
                return v[:10]
        return None

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        kept, dropped = [], []
        for d in docs:
            date = self._dated_after_cutoff(d)
            if date:
                dropped.append(Dropped(d, self.name, "decontam:date"))
                continue
            if self.cve_owner:
                hit = sorted({m.upper() for m in CVE_RE.findall(d.text)} & self.cve_owner.keys())
                if hit:
                    d.metadata["contaminated"] = {"cves": hit[:20], "benchmarks": sorted({self.cve_owner[h] for h in hit})}
                    dropped.append(Dropped(d, self.name, f"decontam:cve:{self.cve_owner[hit[0]]}"))
                    continue
            found = self.matches(d.text)
            if not found:
                kept.append(d)
                continue
            if self.config.mode == "document":
                d.metadata["contaminated"] = {"benchmarks": sorted(found)}
                dropped.append(Dropped(d, self.name, f"decontam:ngram:{sorted(found)[0]}"))
                continue
            paras = split_paragraphs(d.text)
            clean = [p for p in paras if not self.matches(p)]
            d.metadata["contaminated"] = {"benchmarks": sorted(found), "paragraphs_removed": len(paras) - len(clean)}
            if not clean:
                dropped.append(Dropped(d, self.name, f"decontam:ngram:{sorted(found)[0]}"))
                continue
            d.text = "\n\n".join(clean) + "\n"
            kept.append(d)
        return kept, dropped
