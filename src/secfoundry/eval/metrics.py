"""Benchmark metrics: accuracy with stderr and bootstrap CI, CVSS deviations, set metrics, actor graphs.

The statistics underneath (mean, stderr, bootstrap) are in ``eval/statistics.py``.

Conventions (what every ``Task.score`` returns):

* accuracy-like metrics are percentages (0-100), rounded to 2 decimals the way the CTIBench,
  SecEval and CyberMetric papers print them (61.32, 71.0);
* deviations (CVSS MAD) are in score points, rounded to 3 decimals (1.908, 1.31);
* every dict has ``score`` (the headline), ``n`` (items scored), ``n_valid`` (answers that
  parsed), ``parse_failures`` (= n - n_valid), ``stderr`` and ``ci95`` ([lo, hi]) for the
  headline, plus named metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

# Tasks call these as ``metrics.summarize`` etc.; they live in the one statistics module.
from secfoundry.eval.statistics import bootstrap_stat, mean, pct, summarize  # noqa: F401


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
