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
