"""Metrics: accuracy with stderr and bootstrap CI, CVSS deviations, set metrics, actor graphs.

Conventions (what every ``Task.score`` returns):

* accuracy-like metrics are percentages (0-100), rounded to 2 decimals the way the CTIBench,
  SecEval and CyberMetric papers print them (61.32, 71.0);
* deviations (CVSS MAD) are in score points, rounded to 3 decimals (1.908, 1.31);
* every dict has ``score`` (the headline), ``n`` (items scored), ``n_valid`` (answers that
  parsed), ``parse_failures`` (= n - n_valid), ``stderr`` and ``ci95`` ([lo, hi]) for the
  headline, plus named metrics.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

PCT_DIGITS = 2
ABS_DIGITS = 3


def pct(x: float) -> float:
    return round(100.0 * x, PCT_DIGITS)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def stderr(values: Sequence[float]) -> float:
    """Standard error of the mean (sample std / sqrt(n)); 0 for n < 2."""
    n = len(values)
    if n < 2:
        return 0.0
    m = mean(values)
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return math.sqrt(var / n)


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (seeded: the same data gives the same interval)."""
    n = len(values)
    if n == 0:
        return (0.0, 0.0)
    if n == 1:
        return (float(values[0]), float(values[0]))
    try:
        import numpy as np

        rng = np.random.default_rng(seed)
        arr = np.asarray(values, dtype=float)
        idx = rng.integers(0, n, size=(n_boot, n))
        means = np.sort(arr[idx].mean(axis=1))
        lo = float(np.quantile(means, alpha / 2))
        hi = float(np.quantile(means, 1 - alpha / 2))
        return (lo, hi)
    except ImportError:  # numpy is a hard dependency, but keep the metric usable without it
        rng_py = random.Random(seed)
        means = sorted(mean([values[rng_py.randrange(n)] for _ in range(n)]) for _ in range(n_boot))
        return (means[int(alpha / 2 * n_boot)], means[min(n_boot - 1, int((1 - alpha / 2) * n_boot))])


def bootstrap_stat(n: int, stat: Callable[[Sequence[int]], float], n_boot: int = 1000, alpha: float = 0.05,
                   seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap of any statistic of resampled item indices (e.g. micro-F1).
    Returns (stderr, lo, hi): the bootstrap standard deviation and the (1 - alpha) interval."""
    if n == 0:
        return (0.0, 0.0, 0.0)
    rng = random.Random(seed)
    vals = sorted(stat([rng.randrange(n) for _ in range(n)]) for _ in range(n_boot))
    m = mean(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / max(1, len(vals) - 1))
    return (sd, vals[int(alpha / 2 * n_boot)], vals[min(n_boot - 1, int((1 - alpha / 2) * n_boot))])


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (for trials: mean ± std)."""
    if not values:
        return (0.0, 0.0)
    m = mean(values)
    if len(values) < 2:
        return (m, 0.0)
    return (m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)))


def summarize(per_item: Sequence[float], *, percent: bool = True, seed: int = 0) -> dict[str, Any]:
    """Mean of per-item scores with stderr and a bootstrap 95% CI, in percent or raw units."""
    m = mean(per_item)
    se = stderr(per_item)
    lo, hi = bootstrap_ci(per_item, seed=seed)
    if percent:
        return {"value": pct(m), "stderr": pct(se), "ci95": [pct(lo), pct(hi)]}
    return {"value": round(m, ABS_DIGITS), "stderr": round(se, ABS_DIGITS + 1),
            "ci95": [round(lo, ABS_DIGITS), round(hi, ABS_DIGITS)]}


def base_dict(n: int, n_valid: int) -> dict[str, Any]:
    return {"n": n, "n_valid": n_valid, "parse_failures": n - n_valid}


def accuracy_scores(correct: Sequence[bool], valid: Sequence[bool], *, over: str = "all",
                    lenient: Sequence[bool] | None = None, seed: int = 0) -> dict[str, Any]:
    """Accuracy over all items (``over="all"``: unparseable counts wrong) or over the parseable
    ones only (``over="valid"``: CTIBench's denominator)."""
    n, n_valid = len(correct), sum(bool(v) for v in valid)
    if over == "valid":
        per = [1.0 if c else 0.0 for c, v in zip(correct, valid) if v]
    else:
        per = [1.0 if (c and v) else 0.0 for c, v in zip(correct, valid)]
    s = summarize(per, seed=seed)
    out = base_dict(n, n_valid)
    out.update(score=s["value"], accuracy=s["value"], stderr=s["stderr"], ci95=s["ci95"],
               correct=int(sum(per)), denominator=over)
    if lenient is not None:
        sl = summarize([1.0 if x else 0.0 for x in lenient], seed=seed)
        out.update(lenient_accuracy=sl["value"], lenient_stderr=sl["stderr"], lenient_ci95=sl["ci95"])
    return out


# --- CVSS -------------------------------------------------------------------------------------

def cvss_base_score(vector: str | None, default_prefix: str = "CVSS:3.1/") -> float | None:
    """Base score of a CVSS v3.x vector via the ``cvss`` package; None when it does not parse.

    A vector without the ``CVSS:3.x/`` prefix gets ``default_prefix`` (CTIBench's scorer added
    ``CVSS:3.0/`` to the bare vectors models returned).
    """
    if not vector or not isinstance(vector, str):
        return None
    from cvss import CVSS3
    from cvss.exceptions import CVSS3Error

    v = vector.strip().upper()
    if not v.startswith("CVSS:"):
        v = default_prefix + v
    try:
        return float(CVSS3(v).scores()[0])
    except (CVSS3Error, ValueError, KeyError, IndexError, TypeError):
        return None


# --- sets (ATT&CK technique extraction) --------------------------------------------------------

@dataclass
class SetScores:
    exact: float
    jaccard: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_f1: float  # mean over labels (techniques) of per-label F1
    sample_f1: float  # mean over items of per-item F1


def _f1(tp: int, fp: int, fn: int) -> float:
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2 * tp / denom


def set_scores(preds: Sequence[set[str]], golds: Sequence[set[str]]) -> SetScores:
    exact, jac, sample_f1 = [], [], []
    tp = fp = fn = 0
    per_label: dict[str, list[int]] = {}
    for p, g in zip(preds, golds):
        exact.append(1.0 if p == g else 0.0)
        union = p | g
        jac.append(len(p & g) / len(union) if union else 1.0)
        t, f_p, f_n = len(p & g), len(p - g), len(g - p)
        tp, fp, fn = tp + t, fp + f_p, fn + f_n
        sample_f1.append(_f1(t, f_p, f_n))
        for lab in union:
            c = per_label.setdefault(lab, [0, 0, 0])
            c[0] += lab in p and lab in g
            c[1] += lab in p and lab not in g
            c[2] += lab in g and lab not in p
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    micro = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    macro = mean([_f1(*c) for c in per_label.values()]) if per_label else 0.0
    return SetScores(mean(exact), mean(jac), prec, rec, micro, macro, mean(sample_f1))


# --- threat actors (CTIBench TAA) --------------------------------------------------------------

class ActorGraph:
    """CTIBench's actor graphs: an answer is *correct* when it reaches the gold actor through
    alias links, *plausible* when it reaches it through alias and "related group" links.

    Both graphs are made symmetric (as the authors did) and searched breadth-first. Names are
    compared lower-cased and stripped; the identical name always counts as correct.
    """

    def __init__(self, aliases: dict[str, list[str]], related: dict[str, list[str]]):
        self.alias = self._symmetric(aliases)
        self.related = self._symmetric(related)

    @staticmethod
    def _symmetric(d: dict[str, list[str]]) -> dict[str, set[str]]:
        g: dict[str, set[str]] = {}
        for k, vs in d.items():
            k = k.strip().lower()
            for v in vs:
                v = str(v).strip().lower()
                g.setdefault(k, set()).add(v)
                g.setdefault(v, set()).add(k)
        return g

    @staticmethod
    def _reach(src: str, dst: str, graphs: Iterable[dict[str, set[str]]]) -> bool:
        graphs = list(graphs)
        seen, queue = {src}, [src]
        while queue:
            cur = queue.pop(0)
            for g in graphs:
                for nxt in g.get(cur, ()):
                    if nxt == dst:
                        return True
                    if nxt not in seen:
                        seen.add(nxt)
                        queue.append(nxt)
        return False

    def relation(self, gold: str, pred: str | None) -> str:
        """'C' (correct), 'P' (plausible) or 'I' (incorrect)."""
        if pred is None or not str(pred).strip():
            return "I"
        g, p = str(gold).strip().lower(), str(pred).strip().lower()
        if g == p or self._reach(g, p, [self.alias]):
            return "C"
        if self._reach(g, p, [self.alias, self.related]):
            return "P"
        return "I"
