"""The temporal dev/test split the intel benches choose settings on, in one place.

CVEs with a CWE label published on/after the temporal cutoff are halved by a hash of their id:
settings are chosen on ``dev``, reported on ``test`` (bench/intel_cwe_*.py, intel_cvss_nvd.py).
Also the two pieces every CWE-ranking bench needs: which head classes map-cwe may emit, and the
CWE-name term hits it adds.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np


def half(cve_id: str) -> str:
    return "dev" if int(hashlib.sha1(cve_id.encode()).hexdigest(), 16) % 2 == 0 else "test"


def temporal_split(records: Iterable, cutoff: str) -> dict[str, list]:
    """Labelled records published on/after ``cutoff``, by half."""
    out: dict[str, list] = {"dev": [], "test": []}
    for r in records:
        if r.published and r.published >= cutoff and r.cwe:
            out[half(r.id)].append(r)
    return out


def emittable(catalog, classes: Iterable[str]) -> list[str | None]:
    """Per head class: the id map-cwe would emit (validated, never Prohibited), else None."""
    out = []
    for c in classes:
        v = catalog.validate(c)
        out.append(v if v and catalog.entries[v].usage != "Prohibited" else None)
    return out


def keyword_matrix(norm_texts: list[str], terms: dict, index: dict[str, int], n_classes: int) -> np.ndarray:
    """1 where a CWE-name term of ``terms`` occurs in the normalised text (``norm_description``)."""
    kw = np.zeros((len(norm_texts), n_classes), np.float32)
    for i, t in enumerate(norm_texts):
        tn = f" {t} "
        for term, cwes in terms.items():
            if f" {term} " in tn:
                for c in cwes:
                    j = index.get(c)
                    if j is not None:
                        kw[i, j] = 1.0
    return kw


def top1(score: np.ndarray, rows: list, emit: list[str | None]) -> float:
    """Share of ``rows`` whose gold CWEs hold the best-scored emittable class (``emittable``)."""
    order = np.argsort(-score, axis=1)[:, :10]
    hit = 0
    for i, r in enumerate(rows):
        for j in order[i]:
            if emit[j] is not None:
                hit += emit[j] in r.cwe
                break
    return hit / len(rows)
