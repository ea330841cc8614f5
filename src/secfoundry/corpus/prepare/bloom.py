"""A vectorised Bloom filter over 64-bit hashes.

Hand-written because the maintained Python Bloom libraries hash one Python object at a time;
paragraph dedup inserts and queries arrays of n-gram hashes, which numpy does in bulk.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


class BloomFilter:
    def __init__(self, capacity: int, error_rate: float = 1e-4):
        capacity = max(1, capacity)
        m = int(math.ceil(-capacity * math.log(error_rate) / (math.log(2) ** 2)))
        self.n_bits = max(64, 1 << (m - 1).bit_length())  # power of two: cheap masking
        self.k = max(1, int(round(self.n_bits / capacity * math.log(2))))
        self.bits = np.zeros(self.n_bits // 8, dtype=np.uint8)
        self.capacity, self.error_rate = capacity, error_rate

    def _positions(self, hashes: np.ndarray) -> np.ndarray:
        # Kirsch-Mitzenmacher double hashing: h1 + i*h2 gives k independent-enough positions.
        h = hashes.astype(np.uint64, copy=False)
        with np.errstate(over="ignore"):
            h1 = h
            h2 = (h >> np.uint64(32)) | np.uint64(1)
            h2 = h2 * np.uint64(0x9E3779B97F4A7C15) | np.uint64(1)
            i = np.arange(self.k, dtype=np.uint64)[:, None]
            pos = (h1[None, :] + i * h2[None, :]) & np.uint64(self.n_bits - 1)
        return pos  # (k, n)

    CHUNK = 1 << 20  # hashes per vectorised call: bounds the (k, n) position arrays (~100 MB)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        if len(hashes) == 0:
            return np.zeros(0, dtype=bool)
        if len(hashes) > self.CHUNK:
            return np.concatenate([self.contains(hashes[i:i + self.CHUNK]) for i in range(0, len(hashes), self.CHUNK)])
        pos = self._positions(hashes)
        bits = (self.bits[(pos >> np.uint64(3)).astype(np.int64)] >> (pos & np.uint64(7)).astype(np.uint8)) & 1
        return bits.all(axis=0)

    def add(self, hashes: np.ndarray) -> None:
        if len(hashes) == 0:
            return
        if len(hashes) > self.CHUNK:
            for i in range(0, len(hashes), self.CHUNK):
                self.add(hashes[i:i + self.CHUNK])
            return
        # Sorted bit positions (sequential memory access into a filter of tens of MB), the masks
        # of each byte OR-ed together, one write per distinct byte: the bits np.bitwise_or.at
        # would set, ~4x faster.
        pos = np.sort(self._positions(hashes).ravel())
        byte = (pos >> np.uint64(3)).astype(np.int64)
        mask = np.left_shift(np.uint8(1), (pos & np.uint64(7)).astype(np.uint8))
        first = np.flatnonzero(np.concatenate(([True], byte[1:] != byte[:-1])))
        self.bits[byte[first]] |= np.bitwise_or.reduceat(mask, first)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, bits=self.bits, k=self.k, n_bits=self.n_bits)

    @classmethod
    def load(cls, path: Path) -> "BloomFilter":
        z = np.load(path)
        bf = cls.__new__(cls)
        bf.bits, bf.k, bf.n_bits = z["bits"], int(z["k"]), int(z["n_bits"])
        return bf
