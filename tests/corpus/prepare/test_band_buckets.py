"""``_band_buckets`` (vectorised LSH bucketing) gives the buckets, member order and bucket order of
the per-row dictionary loop it replaced: the clustering's merge order depends on them."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from secfoundry.corpus.prepare.dedup_minhash import _band_buckets


def _loop(chunk: np.ndarray) -> list[list[int]]:
    buckets: dict[bytes, list[int]] = defaultdict(list)
    for i in range(len(chunk)):
        buckets[np.ascontiguousarray(chunk[i]).tobytes()].append(i)
    return [m for m in buckets.values() if len(m) > 1]


def test_same_buckets_in_the_same_order() -> None:
    rng = np.random.default_rng(7)
    for n, alphabet in ((0, 2), (1, 2), (50, 2), (2000, 3), (500, 1000)):
        sigs = rng.integers(0, alphabet, size=(n, 16), dtype=np.uint64)
        for band in range(4):
            chunk = sigs[:, band * 4:(band + 1) * 4]
            assert _band_buckets(chunk) == _loop(chunk), (n, alphabet, band)
