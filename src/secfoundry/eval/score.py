"""Scoring a benchmark from its samples: parse, per-trial metrics, trial aggregation, the CI, and
the permutation (option rotation) check. Statistics come from ``eval/statistics.py``."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from secfoundry.eval.plan import TrialPlan
from secfoundry.eval.samples import SampleStore, jsonable, response_from_sample
from secfoundry.eval.statistics import aggregate_trials, confidence, mean, num
from secfoundry.eval.task import Item, Parsed, Protocol, Request, Response, Task


def parse(task: Task, item: Item, req: Request, resp: Response, protocol: Protocol) -> Parsed:
    """The task's parse; a backend error or a parser failure is an unparseable answer."""
    if resp.error is not None:
        return Parsed()
    try:
        return task.parse(item, req, resp, protocol)
    except Exception:  # noqa: BLE001 - a parser failure is an unparseable answer, not a crash
        return Parsed()


def _norm(x: Any) -> Any:
    if isinstance(x, str):
        return x.strip().upper()
    if isinstance(x, (list, tuple, set, frozenset)):
        return sorted(_norm(v) for v in x)
    return x


def is_correct(task: Task, item: Item, parsed: Parsed) -> bool:
    """Per-item agreement of the proper answer with gold (the task's ``is_correct`` when it has
    one). Aggregate metrics (MAD, plausible actors, F1) come from ``Task.score`` only."""
    if not parsed.valid or parsed.answer is None:
        return False
    own = getattr(task, "is_correct", None)
    if callable(own):
        try:
            return bool(own(item, parsed.answer))
        except Exception:  # noqa: BLE001 - fall back to plain equality
            pass
    return _norm(parsed.answer) == _norm(item.gold)


def safe_score(task: Task, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> dict[str, Any] | None:
    try:
        return task.score(items, parsed, protocol)
    except (ZeroDivisionError, ValueError, KeyError, TypeError, IndexError):
        return None


def item_scores(task: Task, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> list[float | None]:
    """Each item's own headline score (None when the task cannot score a single item)."""
    out: list[float | None] = []
    for it, p in zip(items, parsed):
        m = safe_score(task, [it], [p], protocol)
        out.append(num(m.get("score")) if m else None)
    return out


def task_confidence(task: Task, items: list[Item], parsed: list[Parsed], protocol: Protocol,
                    score: float | None, n_boot: int) -> dict[str, Any]:
    """The runner's CI for a task that reports none: see ``statistics.confidence``."""
    def rescore(idx: list[int]) -> float | None:
        m = safe_score(task, [items[i] for i in idx], [parsed[i] for i in idx], protocol)
        return num(m.get("score")) if m else None

    per_item = item_scores(task, items, parsed, protocol)
    return confidence(score, per_item, [p.valid for p in parsed], rescore, len(items), n_boot, protocol.seed)


def score_benchmark(name: str, task: Task, n_boot: int, plan: list[TrialPlan],
                    by_id: dict[str, Item], store: SampleStore) -> dict[str, Any]:
    """``results.json``'s entry for one benchmark from the answers in ``store``."""
    per_trial: list[dict[str, Any]] = []
    permute_trials: list[dict[str, Any]] = []
    ci: dict[str, Any] = {}
    for tp in plan:
        parsed_by_variant: dict[str, dict[str, Parsed]] = defaultdict(dict)
        for r in tp.requests:
            rec = store.get(name, tp.trial, r)
            if rec is None:
                continue
            parsed_by_variant[r.variant][r.item_id] = parse(task, by_id[r.item_id], r, response_from_sample(rec),
                                                            tp.protocol)
        base = parsed_by_variant.get("", {})
        items = [it for it in tp.scored if it.id in base]
        parsed = [base[it.id] for it in items]
        if items:
            metrics = dict(task.score(items, parsed, tp.protocol))
        else:
            metrics = {"score": None, "n": 0, "n_valid": 0, "parse_failures": 0}
        metrics["shots"] = len(tp.shots)
        per_trial.append(metrics)
        if tp.trial == 0 and items:
            if metrics.get("ci95") is not None:  # the task's own interval wins
                ci = {k: metrics[k] for k in ("stderr", "ci95") if k in metrics} | {"ci_method": "task"}
            else:
                ci = task_confidence(task, items, parsed, tp.protocol, num(metrics.get("score")), n_boot)
        if len(parsed_by_variant) > 1:
            permute_trials.append(permutation_metrics(task, tp.protocol, tp.scored, parsed_by_variant))

    result: dict[str, Any] = {"benchmark": name, "headline": headline_name(task, per_trial[0] if per_trial else {}),
                              "higher_is_better": task.higher_is_better, "kind": task.kind}
    agg = aggregate_trials(per_trial)
    result.update(agg)
    result["trials"] = len(per_trial)
    if len(per_trial) > 1:
        result["per_trial"] = per_trial
        # Across trials, the spread of the headline is the uncertainty the protocol reports.
        result["score_std"] = agg.get("std", {}).get("score")
    result.update(ci)
    if len(per_trial) > 1 and "ci95" in result:
        result["ci95_trial0"] = result.pop("ci95")
        result["stderr_trial0"] = result.pop("stderr", None)
    if permute_trials:
        result["permute"] = aggregate_trials(permute_trials)
    p0 = plan[0].protocol if plan else None
    if p0 is not None:
        result["mode"], result["protocol"], result["instruct"] = p0.mode, p0.name, p0.instruct
    return result


def headline_name(task: Task, metrics: dict[str, Any]) -> str:
    """The named metric reported as ``score`` (it can depend on the protocol: CTIBench-VSP's
    headline is the MAD under official and the per-item score under FAITH)."""
    if isinstance(metrics.get("headline"), str):
        return metrics["headline"]
    score = metrics.get("score")
    if score is None or metrics.get(task.headline) == score:
        return task.headline
    for k, v in metrics.items():
        if k != "score" and v == score and not isinstance(v, bool) and "stderr" not in k and "ci95" not in k:
            return k
    return task.headline


def permutation_metrics(task: Task, protocol: Protocol, scored: list[Item],
                        parsed_by_variant: dict[str, dict[str, Parsed]]) -> dict[str, Any]:
    """Score under each rotation of the options, their mean, and consistency: the share (%) of
    items whose answer (in original labels) is the same valid answer under every rotation.
    Uses the task's ``score_variants`` hook when it has one."""
    variants = sorted(parsed_by_variant)
    common = [it for it in scored if all(it.id in parsed_by_variant[v] for v in variants)]
    by_variant = {v: [parsed_by_variant[v][it.id] for it in common] for v in variants}
    out: dict[str, Any] = {}
    if common:
        try:
            full = task.score_variants(common, by_variant, protocol)
            out = {k: full[k] for k in ("variant_scores", "variant_mean", "consistency") if k in full}
        except Exception:  # noqa: BLE001 - fall back to the generic computation below
            out = {}
    if not out:
        per = {}
        for v in variants:
            m = safe_score(task, common, by_variant[v], protocol) if common else None
            per[v or "original"] = num(m.get("score")) if m else None
        nums = [x for x in per.values() if x is not None]
        same = sum(1 for i in range(len(common))
                   if all(by_variant[v][i].valid for v in variants)
                   and len({json.dumps(jsonable(_norm(by_variant[v][i].answer))) for v in variants}) == 1)
        out = {"variant_scores": per, "variant_mean": mean(nums) if nums else None,
               "consistency": 100.0 * same / len(common) if common else None}
    correct_all = sum(1 for it_i, it in enumerate(common)
                      if all(is_correct(task, it, by_variant[v][it_i]) for v in variants))
    out["correct_in_every_variant"] = 100.0 * correct_all / len(common) if common else None
    out["variants"] = len(variants)
    out["n"] = len(common)
    return out
