"""Hashed word n-grams as numpy arrays: window hashes, sort-based set operations, a Bloom bitmap.

The array side of benchmark decontamination (``contamination.py``): every corpus document is
turned into token hashes and window hashes and looked up in sorted hash arrays, so these run per
document and are kept cheap (no Python loop per token or window; numpy 2's hash-based ``unique``
is replaced by sorting, which is several times faster on the short per-document arrays).
"""

from __future__ import annotations

import numpy as np

_MULT = np.uint64(0x9E3779B97F4A7C15)


def window_hashes(th: np.ndarray, n: int) -> np.ndarray:
    """Hash of every window of ``n`` token hashes (position i = tokens i .. i+n-1)."""
    m = len(th) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        acc = np.zeros(m, dtype=np.uint64)
        for k in range(n):
            acc = acc * _MULT + th[k:k + m]
        acc ^= acc >> np.uint64(31)
        acc *= np.uint64(0xBF58476D1CE4E5B9)
        acc ^= acc >> np.uint64(29)
        acc += np.uint64(n)  # windows of different lengths never collide by construction
    return acc


_MINV = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))  # _MULT's inverse modulo 2**64 (_MULT is odd)
_POW: dict[str, np.ndarray] = {"m": np.ones(1, dtype=np.uint64), "inv": np.ones(1, dtype=np.uint64)}


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """_MULT**k and _MINV**k (mod 2**64) for k < n, grown by doubling and kept per process."""
    if len(_POW["m"]) < n:
        size = max(n, 2 * len(_POW["m"]))
        with np.errstate(over="ignore"):
            for key, base in (("m", _MULT), ("inv", _MINV)):
                f = np.full(size, base, dtype=np.uint64)
                f[0] = 1
                _POW[key] = np.cumprod(f, dtype=np.uint64)
    return _POW["m"], _POW["inv"]


def window_sums(th: np.ndarray, n: int) -> np.ndarray:
    """sum_k th[i+k] * M**(n-1-k) (mod 2**64) for every window i of ``n`` tokens (``len(th) >= n``),
    from a prefix sum: see window_hashes_multi."""
    length, k = len(th), len(th) - n + 1
    m, inv = _powers(length + n)
    with np.errstate(over="ignore"):
        pre = np.empty(length + 1, dtype=np.uint64)
        pre[0] = 0
        np.cumsum(th * inv[:length], dtype=np.uint64, out=pre[1:])
        return (pre[n:n + k] - pre[:k]) * m[n - 1:n - 1 + k]


def window_hashes_multi(th: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """``[window_hashes(th, n) for n in sizes]`` from one prefix sum: the window sum
    sum_k th[i+k] * M**(n-1-k) is M**(n-1+i) * (P[i+n] - P[i]) with P[j] = sum_{t<j} th[t] * M**-t
    (all mod 2**64), so each size costs a few array operations instead of n."""
    length = len(th)
    if not length or all(length < n for n in sizes):
        return [window_hashes(th, n) for n in sizes]
    m, inv = _powers(length + max(sizes))
    with np.errstate(over="ignore"):
        pre = np.empty(length + 1, dtype=np.uint64)
        pre[0] = 0
        np.cumsum(th * inv[:length], dtype=np.uint64, out=pre[1:])
        out = []
        for n in sizes:
            k = length - n + 1
            if k <= 0:
                out.append(np.zeros(0, dtype=np.uint64))
                continue
            acc = (pre[n:n + k] - pre[:k]) * m[n - 1:n - 1 + k]
            acc ^= acc >> np.uint64(31)
            acc *= np.uint64(0xBF58476D1CE4E5B9)
            acc ^= acc >> np.uint64(29)
            acc += np.uint64(n)
            out.append(acc)
    return out


def window_hashes_at(th: np.ndarray, n: int, starts: np.ndarray) -> np.ndarray:
    """``window_hashes(th, n)[starts]`` computed for those windows only (``starts`` <= len - n)."""
    with np.errstate(over="ignore"):
        acc = np.zeros(len(starts), dtype=np.uint64)
        for k in range(n):
            acc = acc * _MULT + th[starts + k]
        acc ^= acc >> np.uint64(31)
        acc *= np.uint64(0xBF58476D1CE4E5B9)
        acc ^= acc >> np.uint64(29)
        acc += np.uint64(n)
    return acc


def head_hashes(th: np.ndarray) -> np.ndarray:
    """A hash of every pair of adjacent tokens (position i = tokens i, i+1)."""
    with np.errstate(over="ignore"):
        return th[:-1] * _MULT + th[1:]


def has_short_question(th: np.ndarray, short: dict[int, np.ndarray], heads: np.ndarray) -> bool:
    """Whether the token hashes ``th`` hold the whole of a short question verbatim: ``short`` maps
    a question length to its sorted window hashes, ``heads`` holds the sorted ``head_hashes`` of
    their first two tokens (only windows that start with one of those are hashed)."""
    if not len(heads) or len(th) < 2:
        return False
    starts = np.flatnonzero(member(head_hashes(th), heads))
    for n, sh in short.items():
        st = starts[starts <= len(th) - n]
        if len(st) and len(in_sorted(window_hashes_at(th, n, st), sh)):
            return True
    return False


def uniq(a: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-D array by sorting (numpy 2's hash-based unique costs ~10x more on the
    short per-document arrays this module handles)."""
    if len(a) < 2:
        return a.copy()
    a = np.sort(a)
    keep = np.empty(len(a), dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_set)`` for a sorted, unique ``sorted_set`` (binary search)."""
    if not len(values) or not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    return sorted_set[np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)] == values


def in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``values`` that are in ``sorted_set`` (binary search: no sort of the big set per call)."""
    if not len(values) or not len(sorted_set):
        return values[:0]
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return values[sorted_set[pos] == values]


BITS_MASK = np.uint64((1 << 24) - 1)


def gram_bitmap(grams: np.ndarray) -> np.ndarray:
    bits = np.zeros(1 << 24, dtype=bool)
    bits[grams & BITS_MASK] = True
    return bits
