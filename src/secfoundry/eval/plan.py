"""Planning a run: which benchmarks, which protocol, and per trial which shots, items and requests.

Nothing here talks to a model. A task says whether it draws its own few-shot examples
(``Task.draws_shots``); otherwise the runner draws ``resolve_shots`` examples for it.
Few-shot examples drawn for a trial are never scored in that trial.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from secfoundry.core.errors import InputError
from secfoundry.eval.config import RunConfig
from secfoundry.eval.protocols import FAITH_SHOTS, draw_shots
from secfoundry.eval.task import Item, Protocol, Request, Task
from secfoundry.models.base import GenerationConfig

# Groups accepted by --benchmark besides task names and family names.
GROUPS = ("quickstart", "all")
QUICKSTART_LIMIT = 20  # items per benchmark in the quickstart group unless --limit says otherwise
QUICKSTART_MAX_NEW_TOKENS = 48  # keeps generation benchmarks to seconds per item on a CPU
QUICKSTART_GEN_LIMIT = 5  # generation benchmarks in quickstart: long few-shot prompts, so fewer items


def registry():
    # Imported lazily: the benchmark modules register themselves when the registry loads.
    from secfoundry.eval import benchmarks

    return benchmarks


def task_available_locally(task: Task, data_dir: Path | None) -> bool:
    """True when every data file the task declares exists under ``data_dir``."""
    files = task.files()
    if data_dir is None or not files:
        return False
    return all((data_dir / rel).is_file() for rel, _url, _sha in files)


def resolve_benchmarks(names: Sequence[str], data_dir: Path | None) -> tuple[list[str], bool]:
    """Expand group/family names. Returns (task names, quickstart?)."""
    reg = registry()
    all_names = list(reg.list_tasks())
    out: list[str] = []
    quick = False
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name == "quickstart":
            quick = True
            # judged tasks load a second model as judge (minutes on a CPU): by name only
            chosen = [n for n in all_names if task_available_locally(reg.get_task(n), data_dir)
                      and not getattr(reg.get_task(n), "variant_of", "")
                      and not getattr(reg.get_task(n), "uses_judge", False)]
            if not chosen:
                raise InputError(f"no benchmark data found under {data_dir} for the quickstart group",
                                 file=str(data_dir))
        elif name == "all":
            chosen = [n for n in all_names if not getattr(reg.get_task(n), "variant_of", "")]
        elif name in all_names:
            chosen = [name]
        else:
            chosen = [n for n in all_names if reg.get_task(n).family == name
                      and not getattr(reg.get_task(n), "variant_of", "")]  # variants only by name
            if not chosen:
                raise InputError(f"unknown benchmark {name!r}; known: {', '.join(all_names)} "
                                 f"(groups: {', '.join(GROUPS)})", field="--benchmark")
        out.extend(n for n in chosen if n not in out)
    if not out:
        raise InputError("no benchmark selected", field="--benchmark")
    return out, quick


def apply_quickstart(cfg: RunConfig) -> None:
    """The quickstart group's defaults for whatever ``cfg`` leaves unset."""
    if cfg.limit is None:
        cfg.limit = QUICKSTART_LIMIT
    if cfg.gen_token_cap is None:
        cfg.gen_token_cap = QUICKSTART_MAX_NEW_TOKENS
    if cfg.gen_limit is None:
        cfg.gen_limit = min(QUICKSTART_GEN_LIMIT, cfg.limit)


def resolve_protocol(cfg: RunConfig, instruct: bool) -> Protocol:
    return Protocol(name=cfg.protocol, mode=cfg.mode, shots=cfg.shots, instruct=instruct,  # type: ignore[arg-type]
                    temperature=cfg.temperature, trials=cfg.trials, seed=cfg.seed,
                    max_new_tokens=cfg.max_new_tokens, permute=cfg.permute, score_options=cfg.score_options)


def resolve_shots(protocol: Protocol) -> int:
    """Shots for tasks that do not draw their own: FAITH gives base models 5, others 0."""
    if protocol.shots is not None:
        return protocol.shots
    return FAITH_SHOTS if (protocol.name == "faith" and not protocol.instruct) else 0


def scored_items(items: list[Item], shots: list[Item], limit: int | None) -> list[Item]:
    """Items scored in a trial: everything except that trial's shots, then the first ``limit``."""
    taken = {it.id for it in shots}
    rest = [it for it in items if it.id not in taken]
    return rest[:limit] if limit is not None else rest


@dataclass
class TrialPlan:
    trial: int
    protocol: Protocol  # the protocol as the task sees it in this trial
    shots: list[Item]
    scored: list[Item]
    requests: list[Request]


def plan_trials(task: Task, items: list[Item], protocol: Protocol, cfg: RunConfig,
                limit: int | None = None) -> list[TrialPlan]:
    """Shots, scored items and requests of every trial (generation settings capped per ``cfg``)."""
    pool = task.eligible(items, protocol)
    plan: list[TrialPlan] = []
    for trial in range(protocol.trials):
        if task.draws_shots:
            tp = protocol  # the task applies its own shot defaults and draws from the pool
            shots = task.draw_shots(pool, tp, trial)
            shots_pool = pool  # the task's requests() draws the same shots from it
        else:
            tp = dataclasses.replace(protocol, shots=resolve_shots(protocol))
            shots = draw_shots(pool, tp.shots or 0, tp.seed, trial)
            shots_pool = shots
        scored = scored_items(pool, shots, limit)
        shot_ids = {s.id for s in shots}
        reqs = [r for r in task.requests(scored, tp, trial, shots_pool) if r.item_id not in shot_ids]
        for r in reqs:
            if r.kind != "generate":
                continue
            g = r.gen or GenerationConfig()
            if cfg.gen_token_cap is not None and g.max_new_tokens > cfg.gen_token_cap:
                g = dataclasses.replace(g, max_new_tokens=cfg.gen_token_cap)
            if g.seed is None and g.temperature > 0:
                g = dataclasses.replace(g, seed=tp.seed + trial)
            r.gen = g
        plan.append(TrialPlan(trial, tp, shots, scored, reqs))
    return plan


@dataclass
class BenchmarkPlan:
    trials: list[TrialPlan]
    fallback: str | None = None  # why the benchmark was asked differently than the protocol says


def plan_benchmark(name: str, task: Task, items: list[Item], protocol: Protocol, cfg: RunConfig) -> BenchmarkPlan:
    """The trials of one benchmark. In logprob mode, a benchmark that is not single-answer
    multiple choice (its requests raise ValueError) is asked base-style instead, and says so."""
    try:
        plan = plan_trials(task, items, protocol, cfg, cfg.limit)
        if cfg.gen_limit is not None and cfg.limit is not None and cfg.gen_limit < cfg.limit and all(
                r.kind == "generate" for p in plan for r in p.requests):
            plan = plan_trials(task, items, protocol, cfg, cfg.gen_limit)
        return BenchmarkPlan(plan)
    except InputError:
        raise
    except ValueError as e:
        if protocol.mode != "logprob":
            raise InputError(str(e), field="--benchmark") from e
        # Not a multiple-choice-by-letter benchmark (RCM, VSP, ATE, TAA, multi-answer MCQ):
        # ask it base-style instead (few-shot continuation, short generation), and say so.
        limit = min(x for x in (cfg.limit, cfg.gen_limit) if x is not None) if (cfg.limit or cfg.gen_limit) else None
        plan = plan_trials(task, items, dataclasses.replace(protocol, mode="generate", instruct=False), cfg, limit)
        return BenchmarkPlan(plan, fallback=f"logprob mode not applicable ({e}); generated base-style instead")
