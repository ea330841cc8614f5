"""Tokenize documents and pack them into fixed-length rows (see ``shards.py`` for the format).

Packing runs per input partition so it parallelises (one Ray task per partition) and resumes:
a partition whose ``_parts/<part>.json`` exists is complete and is skipped; its ``.bin`` files
are written under temporary names and renamed only once complete.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from secfoundry.corpus.prepare.shards import Manifest, SourceShards, dtype_for_vocab

PARTS_DIR = "_parts"


@dataclass
class PackConfig:
    tokenizer: str = "smollm2-135m-instruct"  # alias, local dir or hub id
    seq_len: int = 4096
    test_fraction: float = 0.01  # 99/1 train/test split by document-id hash
    batch_size: int = 256  # documents per tokenizer call
    add_bos: bool = False  # Llama-3 style tokenizers want BOS at document start; SmolLM2 has none


def split_of(doc_id: str, test_fraction: float) -> str:
    """Deterministic split from the document id's hash (stable across runs and machines)."""
    h = int.from_bytes(hashlib.sha1(doc_id.encode("utf-8")).digest()[:8], "big")
    return "test" if (h % 1_000_000) < test_fraction * 1_000_000 else "train"


@functools.lru_cache(maxsize=4)
def load_tokenizer(spec: str):
    """A fast tokenizer from an alias (the embedded default), a local dir, or a hub id.

    A local HF directory with ``tokenizer.json`` is loaded with the ``tokenizers`` library
    directly (:class:`RawTokenizer`, ~0.1 s) rather than ``AutoTokenizer`` (~3.5 s with the
    transformers import): packing pays the load once per Ray worker and once on the driver.
    Cached per process: Ray reuses worker processes across packing tasks."""
    if spec in {"smollm2-135m-instruct", "smollm2"}:
        from secfoundry.models.embedded import ensure_converted

        spec = str(ensure_converted())
    raw = RawTokenizer.from_dir(Path(spec)) if Path(spec).is_dir() else None
    if raw is not None:
        return raw
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec, use_fast=True)


class RawTokenizer:
    """The ``tokenizers`` backend of an HF tokenizer directory with the interface packing uses
    (``tok(texts, add_special_tokens=False)["input_ids"]``, ``eos_token_id``, ``bos_token_id``,
    ``len(tok)``); ids are the ones ``AutoTokenizer`` gives (tested)."""

    def __init__(self, tokenizer: Any, eos_token_id: int | None, bos_token_id: int | None):
        self.tokenizer = tokenizer
        self.eos_token_id, self.bos_token_id = eos_token_id, bos_token_id

    @classmethod
    def from_dir(cls, path: Path) -> "RawTokenizer | None":
        """None when the directory lacks what is needed (then AutoTokenizer decides)."""
        tj, cfg_path = path / "tokenizer.json", path / "tokenizer_config.json"
        if not tj.is_file() or not cfg_path.is_file():
            return None
        from tokenizers import Tokenizer

        cfg = json.loads(cfg_path.read_text())
        special = path / "special_tokens_map.json"
        smap = json.loads(special.read_text()) if special.is_file() else {}
        tk = Tokenizer.from_file(str(tj))
        tk.no_padding()
        tk.no_truncation()

        def token_id(name: str) -> int | None:
            tok = cfg.get(name) or smap.get(name)
            if isinstance(tok, dict):
                tok = tok.get("content")
            return tk.token_to_id(tok) if isinstance(tok, str) else None

        eos = token_id("eos_token")
        if eos is None:
            return None
        return cls(tk, eos, token_id("bos_token"))

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict[str, list[list[int]]]:
        # encode_batch_fast (tokenizers >= 0.21) skips character offsets, which packing never uses
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        enc = encode(texts, add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in enc]}


class _RowWriter:
    """Accumulates one (split, source) token stream and writes full rows to a .bin file."""

    def __init__(self, path: Path, seq_len: int, dtype: str):
        self.path, self.seq_len, self.dtype = path, seq_len, np.dtype(dtype).newbyteorder("<")
        self.tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = self.tmp.open("wb")
        self.buf: list[np.ndarray] = []
        self.buffered = 0
        self.rows = 0
        self.docs = 0
        self.licenses: set[str] = set()
        self.versions: set[str] = set()

    def add(self, ids: list[int]) -> None:
        self.buf.append(np.asarray(ids, dtype=self.dtype))
        self.buffered += len(ids)
        self.docs += 1
        if self.buffered >= 64 * self.seq_len:
            self._flush_rows()

    def _flush_rows(self) -> None:
        if not self.buf:
            return
        stream = np.concatenate(self.buf)
        n_rows = len(stream) // self.seq_len
        cut = n_rows * self.seq_len
        if n_rows:
            stream[:cut].tofile(self.fh)
            self.rows += n_rows
        rest = stream[cut:]
        self.buf, self.buffered = ([rest] if len(rest) else []), len(rest)

    def close(self) -> int:
        """Write the last full rows, rename into place; returns the dropped tail length."""
        self._flush_rows()
        self.fh.close()
        os.replace(self.tmp, self.path)
        return self.buffered


def pack_partition(rows: Iterable[Mapping[str, Any]], out_dir: Path, part: str, cfg: PackConfig,
                   tokenizer=None, only_split: str | None = None) -> dict[str, Any]:
    """Pack one partition of documents (dicts with id, text, source, license, version).

    ``only_split`` packs just that split's documents (the others are skipped). Returns (and
    records in ``_parts/<part>.json``) per split/source counts. Idempotent.
    """
    out_dir = Path(out_dir)
    done = out_dir / PARTS_DIR / f"{part}.json"
    if done.exists():
        return json.loads(done.read_text())
    tok = tokenizer or load_tokenizer(cfg.tokenizer)
    dtype = dtype_for_vocab(len(tok))
    eos = tok.eos_token_id
    if eos is None:
        raise ValueError(f"tokenizer {cfg.tokenizer!r} has no EOS token; packing needs one between documents")
    writers: dict[tuple[str, str], _RowWriter] = {}

    def flush(batch: list[Mapping[str, Any]]) -> None:
        enc = tok([r["text"] for r in batch], add_special_tokens=False)["input_ids"]
        for r, ids in zip(batch, enc):
            split = split_of(str(r["id"]).split("#r", 1)[0], cfg.test_fraction)  # copies follow their original
            if only_split and split != only_split:
                continue
            src = str(r.get("source") or "unknown").replace("/", "_")
            key = (split, src)
            if key not in writers:
                writers[key] = _RowWriter(out_dir / split / src / f"shard-{part}.bin", cfg.seq_len, dtype)
            w = writers[key]
            if cfg.add_bos and tok.bos_token_id is not None:
                ids = [tok.bos_token_id, *ids]
            w.add([*ids, eos])
            if r.get("license"):
                w.licenses.add(str(r["license"]))
            if r.get("version"):
                w.versions.add(str(r["version"]))

    batch: list[Mapping[str, Any]] = []
    for r in rows:
        if not r.get("text"):
            continue
        if only_split and split_of(str(r["id"]).split("#r", 1)[0], cfg.test_fraction) != only_split:
            continue  # not tokenized at all: the other split is packed by its own pass
        batch.append(r)
        if len(batch) >= cfg.batch_size:
            flush(batch)
            batch = []
    if batch:
        flush(batch)

    stats: dict[str, Any] = {"part": part, "dtype": dtype, "eos_id": eos, "vocab_size": len(tok), "splits": defaultdict(dict)}
    for (split, src), w in sorted(writers.items()):
        tail = w.close()
        rel = str(w.path.relative_to(out_dir))
        s = SourceShards(files=[rel] if w.rows else [], n_seqs=w.rows, n_tokens=w.rows * cfg.seq_len,
                         n_docs=w.docs, dropped_tail_tokens=tail, licenses=sorted(w.licenses), versions=sorted(w.versions))
        if not w.rows:
            w.path.unlink()
        stats["splits"][split][src] = asdict(s)
    stats["splits"] = dict(stats["splits"])
    done.parent.mkdir(parents=True, exist_ok=True)
    tmp = done.with_name(done.name + ".tmp")
    tmp.write_text(json.dumps(stats, indent=1, sort_keys=True))
    os.replace(tmp, done)
    return stats


def write_manifest(out_dir: Path, cfg: PackConfig, extra: dict | None = None) -> Manifest:
    """Merge every completed partition's stats into ``manifest.json``."""
    out_dir = Path(out_dir)
    parts = sorted((out_dir / PARTS_DIR).glob("*.json"))
    if not parts:
        raise FileNotFoundError(f"{out_dir}: no packed partitions found")
    first = json.loads(parts[0].read_text())
    man = Manifest(tokenizer=cfg.tokenizer, seq_len=cfg.seq_len, dtype=first["dtype"], eos_id=first["eos_id"],
                   vocab_size=first["vocab_size"], extra=extra or {})
    for p in parts:
        st = json.loads(p.read_text())
        for split, srcs in st["splits"].items():
            for src, v in srcs.items():
                agg = man.splits.setdefault(split, {}).setdefault(src, SourceShards())
                agg.files += v["files"]
                agg.n_seqs += v["n_seqs"]
                agg.n_tokens += v["n_tokens"]
                agg.n_docs += v["n_docs"]
                agg.dropped_tail_tokens += v["dropped_tail_tokens"]
                agg.licenses = sorted(set(agg.licenses) | set(v["licenses"]))
                agg.versions = sorted(set(agg.versions) | set(v["versions"]))
    man.save(out_dir)
    return man


# ---- the pipeline step -------------------------------------------------------------------------

from secfoundry.corpus.step import GlobalContext, GlobalStep  # noqa: E402


@dataclass
class PackShardsConfig:
    tokenizer: str = "smollm2-135m-instruct"
    seq_len: int = 4096
    test_fraction: float = 0.01
    batch_size: int = 256
    add_bos: bool = False
    out: str | None = None  # default: <run dir>/shards


class PackShards(GlobalStep):
    """Tokenize and pack the stage input into trainer shards (documents pass through unchanged).

    One packing task per input partition (parallel on Ray when more than one CPU), each resumable;
    then the manifest is merged on the driver.
    """

    name = "pack"

    def __init__(self, config: PackShardsConfig | None = None):
        self.config = config or PackShardsConfig()

    def fit(self, ctx: GlobalContext) -> None:
        c = self.config
        out = Path(c.out) if c.out else ctx.phase_dir.parent / "shards"
        out.mkdir(parents=True, exist_ok=True)
        pcfg = PackConfig(tokenizer=c.tokenizer, seq_len=c.seq_len, test_fraction=c.test_fraction,
                          batch_size=c.batch_size, add_bos=c.add_bos)
        import ray

        # Train rows: one packing task per partition. Test rows: one pass over all partitions,
        # since the 1% held-out split of a small source is shorter than a row in any single
        # partition and would be lost to per-partition tails.
        todo = [p for p in ctx.partitions if not (out / PARTS_DIR / f"{Path(p).stem}.json").exists()]
        test = c.test_fraction > 0 and not (out / PARTS_DIR / "test-all.json").exists()
        parts = [str(p) for p in ctx.partitions]
        if todo and ctx.num_cpus > 1 and ray.is_initialized() and len(todo) > 1:
            # the test pass is one more task beside the train tasks, not a serial tail on the driver
            refs = [ray.remote(_pack_file).remote(str(p), str(out), pcfg, None, "train") for p in todo]
            if test:
                refs.append(ray.remote(_pack_test).remote(parts, str(out), pcfg))
            ray.get(refs)
        else:
            tok = load_tokenizer(c.tokenizer) if todo else None
            for p in todo:
                _pack_file(str(p), str(out), pcfg, tok, "train")
            if test:
                _pack_test(parts, str(out), pcfg)
        man = write_manifest(out, pcfg, extra={"phase": ctx.phase_dir.name})
        (ctx.state_dir / "pack.json").write_text(json.dumps({"out": str(out), "tokens": man.tokens("train")}))


def _pack_test(paths: list[str], out: str, cfg: PackConfig) -> dict[str, Any]:
    """The held-out split of every partition, packed together: the 1% test split of a small source
    is shorter than a row in any single partition and would be lost to per-partition tails."""
    import pyarrow.parquet as pq

    def all_rows():  # pack_partition keeps only the test split, before tokenizing
        for p in paths:
            for b in pq.ParquetFile(p).iter_batches(columns=["id", "text", "source", "license", "version"]):
                yield from b.to_pylist()

    return pack_partition(all_rows(), Path(out), "test-all", cfg, tokenizer=load_tokenizer(cfg.tokenizer), only_split="test")


def _pack_file(path: str, out: str, cfg: PackConfig, tokenizer=None, only_split: str | None = None) -> dict[str, Any]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["id", "text", "source", "license", "version"])
    return pack_partition(table.to_pylist(), Path(out), Path(path).stem, cfg, tokenizer=tokenizer, only_split=only_split)
