"""TF-IDF features and a nearest-neighbour index over CVE descriptions (no pickle on disk).

``LexicalIndex`` holds the vectorizer state (vocabulary + idf, saved as JSON/npy), the record
matrix (sparse, unit rows) and per-row ids and description keys, so that neighbour queries can
apply the leakage rule (``cve_index.Exclusion``) row by row.

Why TF-IDF and not MiniLM here: on the 2 shared cores of the reference machine MiniLM embedded
~12 descriptions/s (38,881 records: ~55 min) and one query cost ~43 ms, the whole latency
budget of map-cwe; word uni+bigram TF-IDF fits in ~10 s and queries in ~1 ms.

Shared helper (engineer I2): ``LexicalIndex.fit(texts, ids, keys)`` / ``.neighbours(...)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from secfoundry.apps.intel.cve_index import Exclusion

TOKEN_PATTERN = r"(?u)\b\w[\w.+-]*\w\b|\b\w\b"
VEC_PARAMS = {"ngram_range": (1, 2), "min_df": 2, "max_df": 0.5, "sublinear_tf": True,
              "max_features": 120_000, "token_pattern": TOKEN_PATTERN, "lowercase": True,
              "dtype": np.float32}


def _vectorizer(vocabulary: dict[str, int] | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    params = dict(VEC_PARAMS)
    if vocabulary is not None:
        params.pop("max_features")
        params.update(min_df=1, max_df=1.0)
        return TfidfVectorizer(vocabulary=vocabulary, **params)
    return TfidfVectorizer(**params)


@dataclass
class Neighbour:
    row: int
    id: str
    similarity: float


class LexicalIndex:
    def __init__(self, vectorizer, matrix: sp.csr_matrix, ids: list[str], keys: list[str]):
        self.vectorizer = vectorizer
        self.matrix = matrix.tocsr().astype(np.float32)
        self.ids = ids
        self.keys = keys
        self._row_of_id: dict[str, list[int]] = {}
        self._rows_of_key: dict[str, list[int]] = {}
        for i, (cid, k) in enumerate(zip(ids, keys)):
            self._row_of_id.setdefault(cid, []).append(i)
            self._rows_of_key.setdefault(k, []).append(i)
        self._matrix_t = self.matrix.T.tocsr()

    @classmethod
    def fit(cls, texts: Sequence[str], ids: list[str], keys: list[str]) -> "LexicalIndex":
        vec = _vectorizer()
        m = vec.fit_transform(texts)
        return cls(vec, m, ids, keys)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self.vectorizer.transform(list(texts)).astype(np.float32).tocsr()

    def excluded_rows(self, exclusion: Exclusion | None) -> list[int]:
        if exclusion is None:
            return []
        rows: set[int] = set()
        for cid in exclusion.ids:
            rows.update(self._row_of_id.get(cid, ()))
        for k in exclusion.desc_keys:
            rows.update(self._rows_of_key.get(k, ()))
        return sorted(rows)

    def similarities(self, q: sp.csr_matrix) -> np.ndarray:
        """Cosine similarity of each query row to every record: (n_queries, n_records)."""
        return np.asarray((q @ self._matrix_t).todense(), dtype=np.float32)

    def neighbours(self, sims: np.ndarray, k: int, excluded: list[int], allowed: np.ndarray | None = None
                   ) -> list[Neighbour]:
        """Top-``k`` rows of one query's similarity vector, never an excluded row."""
        s = sims.copy()
        if excluded:
            s[excluded] = -1.0
        if allowed is not None:
            s[~allowed] = -1.0
        k = min(k, len(s))
        if k <= 0:
            return []
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return [Neighbour(int(r), self.ids[r], float(s[r])) for r in top if s[r] > 0]

    # -- persistence (JSON + npz, no pickle) ------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        vocab = {t: int(i) for t, i in self.vectorizer.vocabulary_.items()}
        (directory / "vocab.json").write_text(json.dumps(vocab))
        np.save(directory / "idf.npy", self.vectorizer.idf_.astype(np.float32))
        save_csr(directory / "matrix.npz", self.matrix)
        (directory / "rows.json").write_text(json.dumps({"ids": self.ids, "keys": self.keys}))

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex":
        vocab = json.loads((directory / "vocab.json").read_text())
        vec = _vectorizer(vocab)
        vec.fit(["x"])  # fixes the vocabulary; the idf is replaced below
        vec.idf_ = np.load(directory / "idf.npy")
        rows = json.loads((directory / "rows.json").read_text())
        return cls(vec, load_csr(directory / "matrix.npz"), rows["ids"], rows["keys"])


def save_csr(path: Path, m: sp.csr_matrix) -> None:
    m = m.tocsr()
    np.savez(path, data=m.data.astype(np.float32), indices=m.indices.astype(np.int32),
             indptr=m.indptr.astype(np.int64), shape=np.array(m.shape, dtype=np.int64))


def load_csr(path: Path) -> sp.csr_matrix:
    with np.load(path, allow_pickle=False) as z:
        return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
