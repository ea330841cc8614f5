"""The one statistics module of eval: means, spreads, bootstrap intervals, trial aggregation.

Two bootstraps live here, on purpose:

* ``bootstrap_ci`` / ``bootstrap_stat`` / ``summarize``: what a task's ``score`` reports for its
  own headline (numpy percentile bootstrap of per-item values, seeded per protocol);
* ``confidence``: what the runner adds when a task reports no interval of its own (per-item
  values when their mean is the score, otherwise rescoring resampled items, within a time budget).

Both are seeded, so the same answers always give the same interval.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any, Callable, Sequence

PCT_DIGITS = 2
ABS_DIGITS = 3


def pct(x: float) -> float:
    return round(100.0 * x, PCT_DIGITS)


def num(v: Any) -> float | None:
    """``v`` as a finite float (bools count as 0/1); None for anything else."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(float(v)):
        return float(v)
    return None


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def std(values: Sequence[float]) -> float:
    """Sample standard deviation; 0 for n < 2."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((x - m) ** 2 for x in values) / (len(values) - 1))


def stderr(values: Sequence[float]) -> float:
    """Standard error of the mean (sample std / sqrt(n)); 0 for n < 2."""
    n = len(values)
    if n < 2:
        return 0.0
    m = mean(values)
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return math.sqrt(var / n)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (for trials: mean ± std)."""
    if not values:
        return (0.0, 0.0)
    return (mean(values), std(values))


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


def paired_bootstrap(diffs: Sequence[float], *, seed: int = 1234, rounds: int = 2000) -> tuple[float, float, float]:
    """Mean of per-item paired differences with a percentile bootstrap 95% CI (numpy, seeded):
    (mean, lo, hi). Resampling pairs keeps each item's difficulty on both sides."""
    import numpy as np

    d = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(rounds, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def summarize(per_item: Sequence[float], *, percent: bool = True, seed: int = 0) -> dict[str, Any]:
    """Mean of per-item scores with stderr and a bootstrap 95% CI, in percent or raw units."""
    m = mean(per_item)
    se = stderr(per_item)
    lo, hi = bootstrap_ci(per_item, seed=seed)
    if percent:
        return {"value": pct(m), "stderr": pct(se), "ci95": [pct(lo), pct(hi)]}
    return {"value": round(m, ABS_DIGITS), "stderr": round(se, ABS_DIGITS + 1),
            "ci95": [round(lo, ABS_DIGITS), round(hi, ABS_DIGITS)]}


def confidence(score: float | None, per_item: Sequence[float | None], valid: Sequence[bool],
               rescore: Callable[[list[int]], float | None], n_items: int, n_boot: int,
               seed: int) -> dict[str, Any]:
    """stderr and a bootstrap 95% CI of a benchmark's headline ``score``.

    When the score is the mean of the per-item scores (over all items, or over the valid ones as
    CTIBench's official denominator does) the bootstrap resamples those; otherwise (F1, set
    metrics) ``rescore`` scores resampled item indices, at most 200 times within 10 s.
    """
    if score is None or not n_items:
        return {}
    rng = random.Random(seed)
    vals: list[float] = []
    for cand in ([s for s in per_item if s is not None],
                 [s for s, ok in zip(per_item, valid) if s is not None and ok]):
        if cand and abs(mean(cand) - score) <= 1e-3 * max(1.0, abs(score)):  # tasks round their scores
            vals = cand
            break
    if vals:
        n = len(vals)
        boots = sorted(mean([vals[rng.randrange(n)] for _ in range(n)]) for _ in range(n_boot))
        err: float | None = std(vals) / math.sqrt(n) if n > 1 else 0.0
        method = "per-item"
    else:
        budget = time.perf_counter() + 10.0
        boots = []
        n = n_items
        for _ in range(min(n_boot, 200)):
            s = rescore([rng.randrange(n) for _ in range(n)])
            if s is not None:
                boots.append(s)
            if time.perf_counter() > budget:
                break
        boots.sort()
        err = std(boots) if len(boots) > 1 else None
        method = "rescore"
    if len(boots) < 2:
        return {"stderr": err}
    lo = boots[int(0.025 * (len(boots) - 1))]
    hi = boots[int(math.ceil(0.975 * (len(boots) - 1)))]
    return {"stderr": err, "ci95": [lo, hi], "ci_method": f"bootstrap-{method}", "n_boot": len(boots)}


def aggregate_trials(per_trial: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every numeric metric across trials, plus their std when there are several."""
    keys: list[str] = []
    for m in per_trial:
        keys.extend(k for k in m if k not in keys)
    out: dict[str, Any] = {}
    spread: dict[str, float] = {}
    for k in keys:
        vals = [num(m.get(k)) for m in per_trial]
        nums = [v for v in vals if v is not None]
        if any(isinstance(m.get(k), bool) for m in per_trial):
            out[k] = per_trial[0].get(k)  # flags (higher_is_better) are not averaged
        elif nums and len(nums) == len(vals):
            avg = mean(nums)
            ints = all(isinstance(m.get(k), int) and not isinstance(m.get(k), bool) for m in per_trial)
            out[k] = int(avg) if ints and avg.is_integer() else avg
            if len(per_trial) > 1:
                spread[k] = std(nums)
        elif k not in out:
            # Non-numeric (or partly missing) values: keep the first trial's.
            out[k] = per_trial[0].get(k)
    if len(per_trial) > 1:
        out["std"] = spread
    return out
