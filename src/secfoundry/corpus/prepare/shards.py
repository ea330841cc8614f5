"""Packed token shards: the hand-off format between the corpus pipeline and the trainer.

Layout of a shard directory (readable without the pipeline, by numpy alone)::

    manifest.json                       format, tokenizer, dtype, seq_len, per-split/per-source
                                        files, sequence/token/document counts, licenses, versions
    <split>/<source>/shard-00000.bin    raw little-endian tokens, shape (n_seqs, seq_len)

Documents are tokenized, an EOS token is appended to each, and the token stream of one
(split, source) is cut into fixed-length rows with no padding (the tail that does not fill a
row is dropped and counted). Per-source files let the trainer mix sources by weight.
We hand-write this instead of using e.g. Megatron's indexed datasets because the format must be
readable with numpy alone and carry per-source provenance.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

FORMAT = "secfoundry-packed-v1"
MANIFEST = "manifest.json"


@dataclass
class SourceShards:
    files: list[str] = field(default_factory=list)  # relative to the shard dir
    n_seqs: int = 0
    n_tokens: int = 0  # tokens written into rows (n_seqs * seq_len)
    n_docs: int = 0
    dropped_tail_tokens: int = 0
    licenses: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    tokenizer: str
    seq_len: int
    dtype: str  # "uint16" | "uint32"
    eos_id: int
    vocab_size: int
    format: str = FORMAT
    splits: dict[str, dict[str, SourceShards]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def save(self, directory: Path) -> None:
        tmp = Path(directory) / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        os.replace(tmp, Path(directory) / MANIFEST)

    @classmethod
    def load(cls, directory: Path) -> "Manifest":
        path = Path(directory) / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{path}: no shard manifest (is this a packed shard directory?)")
        d = json.loads(path.read_text())
        if d.get("format") != FORMAT:
            raise ValueError(f"{path}: unknown shard format {d.get('format')!r}, expected {FORMAT}")
        splits = {s: {src: SourceShards(**v) for src, v in srcs.items()} for s, srcs in d.pop("splits", {}).items()}
        return cls(splits=splits, **d)

    def tokens(self, split: str) -> dict[str, int]:
        return {src: s.n_tokens for src, s in self.splits.get(split, {}).items()}


def dtype_for_vocab(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 65535 else "uint32"


def open_rows(directory: Path, rel_file: str, seq_len: int, dtype: str) -> np.ndarray:
    """Memory-map one shard file as an (n_seqs, seq_len) array."""
    path = Path(directory) / rel_file
    arr = np.memmap(path, dtype=np.dtype(dtype).newbyteorder("<"), mode="r")
    if arr.size % seq_len:
        raise ValueError(f"{path}: {arr.size} tokens is not a multiple of seq_len {seq_len}")
    return arr.reshape(-1, seq_len)


class PackedSource:
    """All rows of one (split, source) as one indexable sequence of rows."""

    def __init__(self, directory: Path, manifest: Manifest, split: str, source: str):
        info = manifest.splits[split][source]
        self.name = source
        self.arrays = [open_rows(directory, f, manifest.seq_len, manifest.dtype) for f in info.files]
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> np.ndarray:
        if i < 0 or i >= len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.arrays[k][i - self.offsets[k]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for a in self.arrays:
            yield from a
