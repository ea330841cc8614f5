"""Text normalisation, n-gram hashing and security-entity extraction shared by the prepare steps."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import xxhash

from secfoundry.corpus.prepare.grams import window_sums

# Identifiers that make two otherwise identical template pages *different* documents.
ENTITY_RE = re.compile(
    r"\b(?:(?i:CVE-\d{4}-\d{4,}|CWE-\d+|CAPEC-\d+|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}|"
    r"(?:PYSEC|RUSTSEC|GO|OSV)-\d{4}-\d+)|T\d{4}(?:\.\d{3})?|TA\d{4}|[GSMC]\d{4}|D3-[A-Z]+|"
    r"[A-Z]{2}-\d+(?:\(\d+\))?)(?:\b|(?<=\)))"  # NIST control enhancements keep their "(1)"
)
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_WS_RE = re.compile(r"\s+")
_PARA_SPLIT = re.compile(r"\n\s*\n")


def normalize(text: str) -> str:
    """Case-, width- and whitespace-insensitive form used for exact duplicates."""
    t = unicodedata.normalize("NFKC", text).lower()
    return _WS_RE.sub(" ", t).strip()


def entities(text: str) -> frozenset[str]:
    return frozenset(m.upper() for m in ENTITY_RE.findall(text))


def words(text: str) -> list[str]:
    return _WORD_RE.findall(unicodedata.normalize("NFKC", text).lower())


# token -> xxh64: corpus text repeats a small vocabulary, so hashing through a per-process cache
# (bounded; cleared when full) costs a dict look-up per token instead of an encode + hash.
_HASHES: dict[str, int] = {}
_HASHES_MAX = 1_000_000


def token_hashes(tokens: list[str]) -> np.ndarray:
    """xxh64 of each token (UTF-8), as uint64."""
    get = _HASHES.__getitem__
    try:
        return np.fromiter(map(get, tokens), dtype=np.uint64, count=len(tokens))
    except KeyError:
        if len(_HASHES) > _HASHES_MAX:
            _HASHES.clear()
        for t in set(tokens).difference(_HASHES):
            _HASHES[t] = xxhash.xxh64_intdigest(t.encode("utf-8", "surrogatepass"))
        return np.fromiter(map(get, tokens), dtype=np.uint64, count=len(tokens))


def ngram_hashes(tokens: list[str], n: int, salt: int = 0) -> np.ndarray:
    """64-bit hashes of every word n-gram (one hash of the whole text when it is shorter)."""
    if not tokens:
        return np.zeros(0, dtype=np.uint64)
    if len(tokens) < n:
        return np.array([xxhash.xxh64_intdigest(" ".join(tokens).encode("utf-8", "surrogatepass"), seed=salt & 0xFFFFFFFFFFFFFFFF)], dtype=np.uint64)
    # Hash each token once, then combine windows arithmetically: much faster than hashing strings.
    # (window_sums: the same polynomial as acc = acc * 0x9E3779B97F4A7C15 + th[k+i] over k, from one prefix sum)
    th = token_hashes(tokens)
    acc = window_sums(th, n)
    with np.errstate(over="ignore"):
        acc ^= np.uint64(salt)
        acc ^= acc >> np.uint64(31)
        acc *= np.uint64(0xBF58476D1CE4E5B9)
        acc ^= acc >> np.uint64(29)
    return acc


def paragraphs(text: str) -> list[str]:
    return _PARA_SPLIT.split(text)


def entity_salt(ents: frozenset[str]) -> int:
    return xxhash.xxh64_intdigest("|".join(sorted(ents)).encode()) if ents else 0
