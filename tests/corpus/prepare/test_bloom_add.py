"""BloomFilter.add sets exactly the bits np.bitwise_or.at sets (speed-only rewrite, issue #14 item 6)."""

from __future__ import annotations

import numpy as np

from secfoundry.corpus.prepare.bloom import BloomFilter


def test_add_matches_bitwise_or_at_including_repeated_hashes():
    rng = np.random.default_rng(1)
    h = rng.integers(0, 2**63, size=5000, dtype=np.uint64)
    h = np.concatenate([h, h[:1000], h[:10]])  # repeats: the same bytes written many times
    bf = BloomFilter(capacity=2000, error_rate=1e-3)
    bf.add(h)
    ref = np.zeros_like(bf.bits)
    pos = bf._positions(h).ravel()
    np.bitwise_or.at(ref, (pos >> np.uint64(3)).astype(np.int64), np.uint8(1) << (pos & np.uint64(7)).astype(np.uint8))
    assert np.array_equal(bf.bits, ref)
    assert bf.contains(h).all()


def test_ngram_hashes_match_the_per_offset_loop():
    """prepare/text.ngram_hashes computes its window polynomial from a prefix sum (speed only)."""
    import random

    import xxhash

    from secfoundry.corpus.prepare.text import ngram_hashes

    def reference(tokens, n, salt=0):
        if not tokens:
            return np.zeros(0, dtype=np.uint64)
        if len(tokens) < n:
            return np.array([xxhash.xxh64_intdigest(" ".join(tokens).encode("utf-8", "surrogatepass"),
                                                    seed=salt & 0xFFFFFFFFFFFFFFFF)], dtype=np.uint64)
        th = np.array([xxhash.xxh64_intdigest(t.encode("utf-8", "surrogatepass")) for t in tokens], dtype=np.uint64)
        with np.errstate(over="ignore"):
            acc = np.zeros(len(tokens) - n + 1, dtype=np.uint64)
            for k in range(n):
                acc = acc * np.uint64(0x9E3779B97F4A7C15) + th[k:len(tokens) - n + 1 + k]
            acc ^= np.uint64(salt)
            acc ^= acc >> np.uint64(31)
            acc *= np.uint64(0xBF58476D1CE4E5B9)
            acc ^= acc >> np.uint64(29)
        return acc

    rng = random.Random(2)
    for _ in range(300):
        toks = [rng.choice(["a", "b", "cve", "ß", "x1", "the"]) for _ in range(rng.randint(0, 80))]
        n, salt = rng.choice([5, 13]), rng.choice([0, 12345, 2**63 + 7])
        assert np.array_equal(ngram_hashes(toks, n, salt), reference(toks, n, salt))
