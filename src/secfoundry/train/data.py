"""Training batches from packed shards: per-source mixing, general replay, exact resume.

Each source is read in a seeded random permutation of its rows (a new permutation per epoch of
that source); which source the next row comes from is drawn from the mixing weights by a seeded
generator. The whole position (generator state + per-source epoch and cursor) is a small
JSON-able dict, so a resumed run continues with exactly the rows an uninterrupted run would see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from secfoundry.corpus.prepare.shards import Manifest, PackedSource


class RowView:
    """Rows of ``seq_len`` tokens cut from packed rows (2048-token shards train at 512 too).

    When ``seq_len`` divides the packed length every packed row yields ``packed // seq_len``
    training rows, so no data is thrown away; otherwise rows are cropped.
    """

    def __init__(self, source: PackedSource, packed_len: int, seq_len: int):
        self.source, self.seq_len = source, seq_len
        self.k = packed_len // seq_len if packed_len % seq_len == 0 else 1
        self.name = source.name

    def __len__(self) -> int:
        return len(self.source) * self.k

    def __getitem__(self, i: int) -> np.ndarray:
        row = self.source[i // self.k]
        j = (i % self.k) * self.seq_len
        return row[j:j + self.seq_len]


@dataclass
class _Stream:
    source: RowView
    seed: int
    epoch: int = 0
    cursor: int = 0
    perm: np.ndarray | None = None

    def _permutation(self) -> np.ndarray:
        if self.perm is None:
            rng = np.random.default_rng([self.seed, self.epoch])
            self.perm = rng.permutation(len(self.source))
        return self.perm

    def next_row(self) -> np.ndarray:
        perm = self._permutation()
        if self.cursor >= len(perm):
            self.epoch, self.cursor, self.perm = self.epoch + 1, 0, None
            perm = self._permutation()
        row = self.source[int(perm[self.cursor])]
        self.cursor += 1
        return row


class MixedBatches:
    """Deterministic, resumable iterator of (micro_batch_size, seq_len) int64 token batches."""

    def __init__(self, shards: str | Path, *, weights: dict[str, float] | None = None, split: str = "train",
                 replay_shards: str | Path | None = None, replay_ratio: float = 0.0, seq_len: int | None = None,
                 micro_batch_size: int = 4, seed: int = 0):
        self.micro_batch_size = micro_batch_size
        man = Manifest.load(Path(shards))
        self.seq_len = seq_len or man.seq_len
        if self.seq_len > man.seq_len:
            raise ValueError(f"seq_len {self.seq_len} exceeds the shards' packed length {man.seq_len}")
        streams: dict[str, _Stream] = {}
        raw_w: dict[str, float] = {}
        for i, (name, info) in enumerate(sorted(man.splits.get(split, {}).items())):
            if info.n_seqs == 0:
                continue
            streams[name] = _Stream(RowView(PackedSource(Path(shards), man, split, name), man.seq_len, self.seq_len),
                                    seed=hash_seed(seed, name))
            raw_w[name] = float((weights or {}).get(name, info.n_tokens))
        if not streams:
            raise ValueError(f"{shards}: split {split!r} has no sequences")
        unknown = set(weights or {}) - set(streams)
        if unknown:
            raise ValueError(f"mixing weights name unknown sources {sorted(unknown)}; have {sorted(streams)}")
        total = sum(raw_w.values())
        probs = {k: v / total for k, v in raw_w.items()}
        if replay_shards and replay_ratio > 0:
            rman = Manifest.load(Path(replay_shards))
            rsrc = {n: i for n, i in rman.splits.get(split, {}).items() if i.n_seqs}
            rtotal = sum(i.n_tokens for i in rsrc.values())
            probs = {k: v * (1 - replay_ratio) for k, v in probs.items()}
            for name, info in sorted(rsrc.items()):
                key = f"replay:{name}"
                if rman.seq_len < self.seq_len:
                    raise ValueError(f"{replay_shards}: packed length {rman.seq_len} < seq_len {self.seq_len}")
                streams[key] = _Stream(RowView(PackedSource(Path(replay_shards), rman, split, name), rman.seq_len,
                                               self.seq_len), seed=hash_seed(seed, key))
                probs[key] = replay_ratio * info.n_tokens / rtotal
        self.names = sorted(streams)
        self.streams = [streams[n] for n in self.names]
        self.probs = np.array([probs[n] for n in self.names])
        self.probs /= self.probs.sum()
        self.rng = np.random.default_rng(seed)
        self.drawn = {n: 0 for n in self.names}

    def next_batch(self, rank: int = 0, world: int = 1) -> torch.Tensor:
        """This rank's rows of the next global micro-batch (``micro_batch_size * world`` rows,
        rank r taking rows ``r*mbs .. (r+1)*mbs``). Every rank draws the same global stream, so
        the position is one state for all ranks, a run on N processes trains on exactly the rows
        of a single-process run with an N-times larger micro-batch, and a checkpoint resumes
        under any number of processes."""
        picks = self.rng.choice(len(self.streams), size=self.micro_batch_size * world, p=self.probs)
        mine = range(rank * self.micro_batch_size, (rank + 1) * self.micro_batch_size)
        rows = []
        for i, k in enumerate(picks):
            row = self.streams[k].next_row()  # every rank advances every stream alike
            if i in mine:
                rows.append(row[: self.seq_len])
            self.drawn[self.names[k]] += 1
        return torch.from_numpy(np.stack(rows).astype(np.int64))

    # ---- exact resume ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "streams": {n: {"epoch": s.epoch, "cursor": s.cursor} for n, s in zip(self.names, self.streams)},
            "drawn": dict(self.drawn),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        for n, s in zip(self.names, self.streams):
            st = state["streams"].get(n)
            if st is None:
                raise ValueError(f"checkpoint data state lacks source {n!r}: the shard set changed")
            s.epoch, s.cursor, s.perm = st["epoch"], st["cursor"], None
        self.drawn = dict(state.get("drawn", self.drawn))


def hash_seed(seed: int, name: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha1(f"{seed}:{name}".encode()).digest()[:4], "big")


def eval_batches(shards: str | Path, split: str, seq_len: int | None, micro_batch_size: int, max_batches: int,
                 sources: Callable[[str], bool] | None = None):
    """Fixed held-out batches: rows of every (selected) source, interleaved (deterministic).

    ``max_batches <= 0`` means every row.
    """
    man = Manifest.load(Path(shards))
    sl = seq_len or man.seq_len
    srcs = [RowView(PackedSource(Path(shards), man, split, n), man.seq_len, sl)
            for n, i in sorted(man.splits.get(split, {}).items()) if i.n_seqs and (sources is None or sources(n))]
    rows: list[np.ndarray] = []
    want = micro_batch_size * max_batches if max_batches > 0 else sum(len(s) for s in srcs)
    i = 0
    while len(rows) < want and any(i < len(s) for s in srcs):
        for s in srcs:
            if i < len(s) and len(rows) < want:
                rows.append(np.asarray(s[i]))
        i += 1
    for b in range(0, len(rows), micro_batch_size):
        yield torch.from_numpy(np.stack(rows[b:b + micro_batch_size]).astype(np.int64))


def is_general(source: str) -> bool:
    """Replay/general-domain sources are named ``general:<name>`` by the corpus pipeline."""
    return source.startswith("general:") or source.startswith("replay:") or source == "general"
