from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from secfoundry.corpus.prepare.shards import Manifest, SourceShards

TINY_LLAMA = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
              "tie_word_embeddings": True}


def make_shards(root: Path, sources: dict[str, int], seq_len: int = 32, vocab: int = 512, seed: int = 0) -> Path:
    """Random-token shards with the real on-disk format (rows per source per split)."""
    rng = np.random.default_rng(seed)
    man = Manifest(tokenizer="random", seq_len=seq_len, dtype="uint16", eos_id=0, vocab_size=vocab)
    for split, frac in (("train", 1.0), ("test", 0.25)):
        for src, n_rows in sources.items():
            n = max(2, int(n_rows * frac))
            # A learnable pattern (per-source token offsets) so the loss can actually drop.
            base = rng.integers(0, vocab, size=(n, 1))
            rows = ((base + np.arange(seq_len)[None, :] * (1 + len(src) % 3)) % vocab).astype("<u2")
            rel = f"{split}/{src}/shard-00000.bin"
            (root / split / src).mkdir(parents=True, exist_ok=True)
            rows.tofile(root / rel)
            man.splits.setdefault(split, {})[src] = SourceShards(files=[rel], n_seqs=n, n_tokens=n * seq_len, n_docs=n)
    man.save(root)
    return root


@pytest.fixture
def tiny_shards(tmp_path) -> Path:
    return make_shards(tmp_path / "shards", {"attack": 40, "cwe": 20})
