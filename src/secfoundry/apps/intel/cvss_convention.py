"""CVSS scoring conventions: shift predict-cvss's per-metric distributions toward CISA-ADP's.

predict-cvss learns from the records' vectors, which are mostly the CNA's own (22,984 CNA vs
5,198 CISA-ADP-only on the shared records). NVD's analysts (CTIBench-VSP's gold) score
differently: more often PR:N where the CNA wrote PR:L, C/I/A:H where it wrote L. No NVD-scored
set is in the shared data (one NVD API page); CISA's ADP vectors (vulnrichment), written by
government analysts for CVEs whose CNA gave none, are the nearest stand-in.

``offsets`` are per-metric, per-value log-prior shifts: ``p'(v) ∝ p(v) · exp(offset[v])`` - a
label-shift correction, fitted by maximum likelihood of the ADP vectors under the shifted
distributions (``fit_offsets``) on the dev half of the ADP-only CVEs published after the temporal
cutoff, predicted by the temporal model that never saw them (``bench/intel_cvss_nvd.py``); the
test half measures them. The table below is that bench's output, copied by hand.

Measured outcome (BENCHMARKS.md): ADP is not an NVD stand-in - the learned model's mean signed
error is +0.2 against ADP vectors but -0.2 against NVD's (CTIBench-VSP), and the offsets did not
lower MAD on the ADP test half (1.033 -> 1.046). So the convention is named for what it fits,
``adp``, and the default stays ``cna`` (as learned) everywhere, including ``system:predict-cvss``.
"""

from __future__ import annotations

import math
from typing import Sequence

CONVENTIONS = ("cna", "adp")

# bench/intel_cvss_nvd.py, dev half (824 ADP-only CVEs after 2024-06-01; see BENCHMARKS.md)
ADP_OFFSETS: dict[str, dict[str, float]] = {
    "AV": {"N": -0.033, "A": 0.005, "L": -0.318, "P": 0.347}, "AC": {"L": 0.331, "H": -0.331},
    "PR": {"N": -0.053, "L": 0.198, "H": -0.146}, "UI": {"N": 0.177, "R": -0.177}, "S": {"U": 0.147, "C": -0.147},
    "C": {"N": -0.33, "L": 0.152, "H": 0.178}, "I": {"N": -0.1, "L": -0.023, "H": 0.122},
    "A": {"N": -0.191, "L": 0.208, "H": -0.017},
}


def offsets_for(convention: str) -> dict[str, dict[str, float]]:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, not {convention!r}")
    return ADP_OFFSETS if convention == "adp" else {}


def shift(dist: dict[str, dict[str, float]], offsets: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Apply log-prior offsets to per-metric distributions (renormalised)."""
    out = {}
    for m, d in dist.items():
        off = offsets.get(m) or {}
        w = {v: p * math.exp(off.get(v, 0.0)) for v, p in d.items()}
        z = sum(w.values()) or 1.0
        out[m] = {v: x / z for v, x in w.items()}
    return out


def fit_offsets(dists: Sequence[dict[str, float]], gold: Sequence[str], values: str, *, l2: float = 0.01,
                steps: int = 500, lr: float = 0.5) -> dict[str, float]:
    """Offsets for one metric maximising the mean log-likelihood of ``gold`` under the shifted
    distributions (gradient ascent on a small convex problem; ``l2`` keeps them near 0)."""
    import numpy as np

    vals = list(values)
    P = np.array([[max(d.get(v, 0.0), 1e-6) for v in vals] for d in dists], dtype=np.float64)
    L = np.log(P)
    Y = np.zeros_like(P)
    for i, g in enumerate(gold):
        if g in vals:
            Y[i, vals.index(g)] = 1.0
    keep = Y.sum(axis=1) > 0
    L, Y = L[keep], Y[keep]
    b = np.zeros(len(vals))
    if not len(L):
        return {v: 0.0 for v in vals}
    for _ in range(steps):
        z = L + b
        z -= z.max(axis=1, keepdims=True)
        q = np.exp(z)
        q /= q.sum(axis=1, keepdims=True)
        grad = (Y - q).mean(axis=0) - l2 * b
        b += lr * grad
    b -= b.mean()
    return {v: round(float(x), 3) for v, x in zip(vals, b)}
