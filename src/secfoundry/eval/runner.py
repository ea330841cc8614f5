"""Run benchmarks against a model: the orchestration of one run directory.

A run is: plan (``eval/plan.py``: benchmarks, protocol, shots and requests per trial) →
execute (``eval/execute.py``: batches by shared prefix) → store (``eval/samples.py``:
``samples.jsonl``, resumable) → score (``eval/score.py`` with ``eval/statistics.py``). This
module writes ``config.json`` and ``results.json`` (metrics per benchmark, mean ± std across
trials, CIs) and resumes an interrupted run from its samples.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secfoundry.core.errors import InputError
from secfoundry.eval.config import RunConfig
from secfoundry.eval.execute import execute
from secfoundry.eval.plan import (TrialPlan, apply_quickstart, plan_benchmark, registry, resolve_benchmarks,
                                  resolve_protocol)
from secfoundry.eval.samples import (RUN_FILES, SAMPLES, SampleStore, jsonable, read_json, record_prefixes,
                                     sample_record, write_json)
from secfoundry.eval.score import is_correct, parse, score_benchmark
from secfoundry.eval.task import Protocol, Request, Response, Task
from secfoundry.models.base import LanguageModel

__all__ = ["RunConfig", "RunOutcome", "BenchmarkOutcome", "Progress", "run_eval"]


@dataclass
class BenchmarkOutcome:
    name: str
    result: dict[str, Any]
    requests: int
    answered: int  # answered in this invocation (the rest came from samples.jsonl)
    elapsed_s: float


@dataclass
class RunOutcome:
    out: Path
    config: dict[str, Any]
    results: dict[str, Any]
    benchmarks: list[BenchmarkOutcome] = field(default_factory=list)


class Progress:
    """What the runner reports while it works (the CLI plugs a rich progress bar in here)."""

    def start(self, benchmark: str, total: int, done: int) -> None: ...

    def advance(self, benchmark: str, n: int) -> None: ...

    def finish(self, benchmark: str) -> None: ...

    def note(self, benchmark: str, message: str) -> None: ...


def _describe_data(task: Task, data_dir: Path | None) -> Any:
    """The task's own data description, else path/url/pinned and actual sha256 of its files."""
    from secfoundry.eval.data import sha256_file

    hook = getattr(task, "data_description", None)
    if callable(hook):
        try:
            return hook(data_dir)
        except Exception:  # noqa: BLE001 - e.g. files not downloaded yet: hash what is local
            pass
    out = []
    for rel, url, pinned in task.files():
        local = (data_dir / rel) if data_dir else None
        rec: dict[str, Any] = {"path": rel, "url": url, "pinned_sha256": pinned}
        if local is not None and local.is_file():
            rec["sha256"] = sha256_file(local)
            rec["local"] = str(local)
            rec["matches_pin"] = (not pinned) or rec["sha256"] == pinned
        out.append(rec)
    return out


def detect_instruct(model: LanguageModel) -> bool:
    try:
        return bool(model.capabilities.chat_template)
    except Exception:  # noqa: BLE001
        return False


def _package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("secfoundry", "torch", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _check_resumable(out: Path, cfg: RunConfig) -> None:
    cfg_path = out / "config.json"
    if not cfg_path.exists() or not (out / SAMPLES).exists():
        return
    try:
        old = json.loads(cfg_path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise InputError(f"unreadable config ({e}); rerun with --fresh", file=str(cfg_path)) from e
    prev = old.get("run", {})
    mine = jsonable(cfg.identity())
    diff = [k for k, v in mine.items() if k in prev and prev[k] != v]
    if diff:
        raise InputError("this directory holds a different run (" + ", ".join(
            f"{k}: {prev[k]!r} != {mine[k]!r}" for k in diff) + "); use another --out or --fresh",
            file=str(cfg_path))


def run_eval(cfg: RunConfig, model: LanguageModel | None = None, tasks: dict[str, Task] | None = None,
             progress: Progress | None = None, argv: list[str] | None = None) -> RunOutcome:
    """Run ``cfg``; ``model``/``tasks`` may be given directly (tests, notebooks).

    ``tasks`` maps benchmark names to Task objects and bypasses the registry.
    """
    from secfoundry.core.paths import benchmark_data_dir

    progress = progress or Progress()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = benchmark_data_dir(cfg.data_dir)

    if tasks is not None:
        names, quick = [n for n in cfg.benchmarks if n in tasks], False
        missing = [n for n in cfg.benchmarks if n not in tasks]
        if missing:
            raise InputError(f"unknown benchmark(s): {', '.join(missing)}", field="--benchmark")
    else:
        names, quick = resolve_benchmarks(cfg.benchmarks, data_dir)
        tasks = {n: registry().get_task(n) for n in names}
    if quick:
        apply_quickstart(cfg)

    if cfg.fresh:
        for f in RUN_FILES:
            (out / f).unlink(missing_ok=True)
    if model is None:
        from secfoundry.models import load_model

        model = load_model(cfg.model, **cfg.load_options())
    instruct_source = "detected" if cfg.instruct is None else "flag"
    instruct = detect_instruct(model) if cfg.instruct is None else cfg.instruct
    cfg.instruct = instruct
    _check_resumable(out, cfg)
    protocol = resolve_protocol(cfg, instruct)
    from secfoundry.eval.judge import attach_judges  # tasks graded by an LLM judge share one (eval/judge.py)

    judge = attach_judges({n: tasks[n] for n in names}, cfg.judge, out)

    try:
        describe = model.describe()
    except Exception as e:  # noqa: BLE001
        describe = {"spec": cfg.model, "describe_error": str(e)}
    config = {
        "run": jsonable(cfg.identity()) | {"benchmarks": names, "data_dir": str(data_dir) if data_dir else None,
                                          "batch_size": cfg.batch_size, "quickstart": quick},
        "model": describe,
        "instruct": instruct,
        "instruct_source": instruct_source,
        "protocol": dataclasses.asdict(protocol),
        "seeds": {"seed": protocol.seed, "trial_seeds": [protocol.seed + t for t in range(protocol.trials)],
                  "bootstrap_seed": protocol.seed},
        "datasets": {n: _describe_data(tasks[n], data_dir) for n in names},
        "versions": _package_versions(),
        "command": argv if argv is not None else sys.argv,
        "started": _now(),
    }
    if judge is not None:
        config["judge"] = judge
    previous = read_json(out / "config.json") if not cfg.fresh else None
    if previous and (out / SAMPLES).exists():
        # Resuming (or extending with more benchmarks): keep the history of the directory.
        config["started"] = previous.get("started", config["started"])
        config["resumed"] = previous.get("resumed", []) + [_now()]
        old_names = previous.get("run", {}).get("benchmarks", [])
        config["run"]["benchmarks"] = old_names + [n for n in names if n not in old_names]
        config["datasets"] = previous.get("datasets", {}) | config["datasets"]
    write_json(out / "config.json", config)

    results_path = out / "results.json"
    results: dict[str, Any] = {}
    if previous and (out / SAMPLES).exists():
        results.update(read_json(results_path) or {})  # benchmarks of earlier invocations stay
    store = SampleStore(out / SAMPLES)
    outcome = RunOutcome(out=out, config=config, results=results)
    try:
        for name in names:
            bo = _run_benchmark(name, tasks[name], model, protocol, cfg, data_dir, store, out, progress)
            prior = results.get(name) or {}
            if isinstance(prior.get("elapsed_s"), (int, float)) and bo.answered < bo.requests:
                # resumed: the time spent by earlier invocations counts too
                bo.result["elapsed_s"] = round(bo.result["elapsed_s"] + prior["elapsed_s"], 3)
            results[name] = bo.result
            outcome.benchmarks.append(bo)
            write_json(results_path, results)  # partial results survive a later crash
    finally:
        store.close()
    config["finished"] = _now()
    write_json(out / "config.json", config)
    return outcome


def _run_benchmark(name: str, task: Task, model: LanguageModel, protocol: Protocol, cfg: RunConfig,
                   data_dir: Path | None, store: SampleStore, out: Path, progress: Progress) -> BenchmarkOutcome:
    t0 = time.perf_counter()
    items = task.load(data_dir)
    by_id = {it.id: it for it in items}
    if len(by_id) != len(items):
        raise InputError(f"{name}: item ids are not unique", field="Item.id")

    # Plan every trial first so the progress bar knows the total.
    bplan = plan_benchmark(name, task, items, protocol, cfg)
    plan = bplan.trials
    if bplan.fallback:
        progress.note(name, "not single-answer multiple choice: generated base-style (few-shot continuation)")
    record_prefixes(out, name, plan)

    total = sum(len(p.requests) for p in plan)
    # Backend failures recorded earlier are retried (a server may be back); answers are kept.
    todo_by_trial = [[r for r in p.requests if store.needs_answer(name, p.trial, r)] for p in plan]
    todo = sum(len(t) for t in todo_by_trial)
    progress.start(name, total, total - todo)

    for p, todo_reqs in zip(plan, todo_by_trial):
        def on_batch(batch: list[Request], responses: list[Response], p: TrialPlan = p) -> None:
            prime = getattr(task, "prime", None)  # optional: e.g. one judge call for the whole batch
            if callable(prime):
                prime([by_id[r.item_id] for r in batch], batch, responses)
            recs = []
            for req, resp in zip(batch, responses):
                item = by_id[req.item_id]
                parsed = parse(task, item, req, resp, p.protocol)
                recs.append(sample_record(name, p.trial, item, req, resp, parsed, is_correct(task, item, parsed)))
            store.append(recs)
            progress.advance(name, len(batch))

        if todo_reqs:
            execute(model, todo_reqs, cfg.batch_size, on_batch)
    progress.finish(name)

    result = score_benchmark(name, task, cfg.bootstrap, plan, by_id, store)
    elapsed = time.perf_counter() - t0
    if bplan.fallback:
        result["mode_fallback"] = bplan.fallback
    result["elapsed_s"] = round(elapsed, 3)
    result["answered_now"] = todo
    if todo and elapsed > 0:
        result["requests_per_s"] = round(todo / elapsed, 3)
    return BenchmarkOutcome(name=name, result=result, requests=total, answered=todo, elapsed_s=elapsed)
