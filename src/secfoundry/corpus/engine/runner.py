"""The stage runner: plans phases, skips what is done, runs the rest on Ray Data.

A run is a chain of *phases*. Phase 0 is collect (one partition per collect task). Every
recipe stage is split before each global step, so a phase is an optional leading global step
plus the map steps after it, fused per partition. Each phase directory keeps a fingerprint of
its configuration and of everything upstream; a changed recipe rebuilds the changed phase and
everything after it, an unchanged one resumes.

Ray Data does the scheduling: the pending partitions of a phase become a dataset of work items,
``map_batches`` on a task pool runs one partition per task on every CPU of the cluster (steps
and their models are set up once per worker process and reused, see ``workers.py``), and the
driver streams the per-partition stats back for progress and the summary. The
same code runs on a laptop and on a cluster (``--ray-address auto``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from secfoundry.corpus.engine.recipe import Recipe, StepSpec, fingerprint
from secfoundry.corpus.step import GlobalContext, step_kind
from secfoundry.corpus.engine.registry import build_step, resolve_step_class
from secfoundry.corpus.engine.storage import PhaseStore, atomic_write_json
from secfoundry.corpus.engine.summary import PhaseSummary, RunSummary, summarise_phase
from secfoundry.core.errors import InputError


@dataclass
class Phase:
    index: int
    stage: str
    dirname: str
    steps: list[StepSpec] = field(default_factory=list)
    global_step: StepSpec | None = None  # steps[0] when the phase starts with a global step

    @property
    def label(self) -> str:
        return self.dirname.split("-", 1)[1]


def plan_phases(recipe: Recipe) -> list[Phase]:
    phases = [Phase(0, "collect", "00-collect")]
    for s_idx, stage in enumerate(recipe.stages, 1):
        groups: list[list[StepSpec]] = []
        for spec in stage.steps:
            if not spec.enabled:
                continue
            is_global = step_kind(resolve_step_class(spec.step)) == "global"
            if is_global or not groups:
                groups.append([spec])
            else:
                groups[-1].append(spec)
        if not groups:
            groups = [[]]  # an empty stage copies its input (keeps stage numbering stable)
        for g_idx, group in enumerate(groups):
            suffix = "" if len(groups) == 1 else f"-{g_idx + 1}-{group[0].step.replace(':', '.')}"
            first_global = bool(group) and step_kind(resolve_step_class(group[0].step)) == "global"
            phases.append(Phase(len(phases), stage.name, f"{s_idx:02d}-{stage.name}{suffix}", list(group),
                                group[0] if first_global else None))
    return phases


class Runner:
    def __init__(self, recipe: Recipe, out: Path, *, mirror: str | None = None, ray_address: str | None = None,
                 until: str | None = None, console: Any = None, progress: bool = True,
                 on_partition: Callable[[Phase, dict[str, Any]], None] | None = None, retry_failed: bool = False):
        self.recipe = recipe
        self.out = Path(out)
        m = mirror or recipe.mirror
        self.mirror = str(Path(m).expanduser().resolve()) if m else None  # stable fingerprint
        self.ray_address = ray_address if ray_address is not None else recipe.engine.ray_address
        self.until = until
        self.console = console
        self.show_progress = progress
        self.on_partition = on_partition
        self.retry_failed = retry_failed
        self.cpus = 1
        self._phases: list[Phase] = []
        self._prebuilt: dict[str, Any] = {}  # phase dirname -> Ray ref of its global step's prebuild()

    # ------------------------------------------------------------------ entry
    def run(self) -> RunSummary:
        t0 = time.time()
        self.out.mkdir(parents=True, exist_ok=True)
        with self._lock():
            return self._run(t0)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One run per output directory: a second driver would delete the first one's in-flight
        files as strays. The OS drops the lock when the holder dies, even by SIGKILL."""
        import fcntl

        with open(self.out / ".lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise InputError(f"{self.out}: another corpus run is using this directory") from None
            yield

    def _run(self, t0: float) -> RunSummary:
        from secfoundry.corpus.engine.ray_runtime import init_ray

        (self.out / "recipe.yaml").write_text(self.recipe.to_yaml())
        eng = self.recipe.engine
        self.cpus = init_ray(self.ray_address, num_cpus=eng.num_cpus, object_store_mb=eng.object_store_mb,
                             verbose=eng.verbose, runtime_env=eng.runtime_env)
        phases = plan_phases(self.recipe)
        self._phases = phases
        if self.until and self.until not in {p.stage for p in phases}:
            raise InputError(f"--until {self.until!r}: no such stage (have {sorted({p.stage for p in phases})})")
        summaries: list[PhaseSummary] = []
        upstream_fp = ""
        upstream: PhaseStore | None = None
        upstream_keys: list[str] = []
        for phase in phases:
            store = PhaseStore(self.out / phase.dirname)
            if phase.index == 0:
                fp = fingerprint({"inputs": [dataclasses.asdict(i) for i in self.recipe.inputs],
                                  "mirror": self.mirror, "partition_rows": eng.partition_rows})
            else:
                # the upstream's committed content is part of the identity: if an upstream
                # partition is redone (e.g. --retry-failed), everything after it is rebuilt
                content = [(m["key"], m["files"], m.get("docs_out")) for m in upstream.markers()
                           if m["key"] in set(upstream_keys)] if upstream else []
                fp = fingerprint({"up": upstream_fp, "content": content,
                                  "steps": [s.fingerprint() for s in phase.steps]})
            plan = self._load_or_make_plan(phase, store, fp, upstream, upstream_keys)
            if phase.index == 0 and self.retry_failed:
                self._forget_failed_inputs(store)
            summaries.append(self._run_phase(phase, store, plan))
            upstream_fp, upstream, upstream_keys = fp, store, plan["keys"]
            if self.until and phase.stage == self.until and (phase is phases[-1] or phases[phase.index + 1].stage != self.until):
                break
        self._remove_stale(phases)
        summary = RunSummary(recipe=self.recipe.name, out=str(self.out), phases=summaries,
                             seconds=round(time.time() - t0, 2),
                             output_files=[str(p) for p in upstream.committed_files(upstream_keys)] if upstream else [])
        atomic_write_json(self.out / "summary.json", summary.to_dict())
        return summary

    # ------------------------------------------------------------------ planning
    def _load_or_make_plan(self, phase: Phase, store: PhaseStore, fp: str, upstream: PhaseStore | None,
                           upstream_keys: list[str]) -> dict[str, Any]:
        plan = store.load_plan()
        if plan is not None and plan.get("fingerprint") != fp:
            self._say(f"[yellow]{phase.dirname}: recipe or upstream changed, rebuilding this phase[/]")
            shutil.rmtree(store.root)
            plan = None
        if plan is not None:
            return plan
        if phase.index == 0:
            from secfoundry.corpus.collect.plan import plan_tasks

            tasks = plan_tasks(self.recipe.inputs, self.mirror)
            plan = {"fingerprint": fp, "phase": phase.dirname, "keys": [t.key for t in tasks],
                    "tasks": {t.key: t.to_dict() for t in tasks}}
        else:
            assert upstream is not None
            files = upstream.committed_files(upstream_keys)
            keys = [f.name[: -len(".parquet")] for f in files]
            plan = {"fingerprint": fp, "phase": phase.dirname, "keys": keys,
                    "inputs": {k: str(f.relative_to(self.out)) for k, f in zip(keys, files)},
                    "steps": [s.fingerprint() for s in phase.steps]}
        store.root.mkdir(parents=True, exist_ok=True)
        store.save_plan(plan)
        return plan

    def _forget_failed_inputs(self, store: PhaseStore) -> None:
        """Collect tasks whose input failed are committed (empty) so the run can finish; this
        drops their markers so they are tried again."""
        failed = [m["key"] for m in store.markers() if m.get("error")]
        for key in failed:
            store.marker_path(key).unlink(missing_ok=True)
        if failed:
            (store.root / "_SUCCESS").unlink(missing_ok=True)
            self._say(f"{store.root.name}: retrying {len(failed)} failed input(s): {', '.join(failed)}")

    def _remove_stale(self, phases: list[Phase]) -> None:
        """Phase directories no longer in the recipe are stale outputs: say so, leave them."""
        names = {p.dirname for p in phases}
        for d in sorted(self.out.iterdir()):
            if d.is_dir() and d.name[:2].isdigit() and d.name not in names and (d / "_plan.json").exists():
                self._say(f"[dim]{d.name}: not part of this recipe (left in place)[/]")

    # ------------------------------------------------------------------ execution
    def _run_phase(self, phase: Phase, store: PhaseStore, plan: dict[str, Any]) -> PhaseSummary:
        t0 = time.time()
        keys: list[str] = plan["keys"]
        if store.complete:
            self._say(f"[green]✓[/] {phase.dirname}: complete, skipped")
            return summarise_phase(phase.dirname, phase.stage, store, keys, skipped=len(keys), seconds=0.0)
        store.clean_strays()
        done = store.done_keys()
        pending = [k for k in keys if k not in done]
        if phase.global_step is not None:
            self._fit_global(phase, store, plan)
        if pending and phase.index > 0 and self.recipe.engine.warmup:
            self._warmup(phase)
        errors: dict[str, str] = {}
        if pending:
            errors = self._execute(phase, store, plan, pending)
        summary = summarise_phase(phase.dirname, phase.stage, store, keys, skipped=len(keys) - len(pending),
                                  seconds=round(time.time() - t0, 2), errors=errors)
        if errors:
            raise PhaseFailed(phase.dirname, errors, summary)
        store.clean_strays()
        store.mark_complete(summary.to_dict())
        return summary

    def _warmup(self, phase: Phase) -> None:
        """Set each map step up once on the driver before the workers start, so first-use work
        (training a default model, downloading a tokenizer) happens once instead of racing in
        every worker."""
        for spec in phase.steps:
            if spec is phase.global_step:
                continue
            step = build_step(spec.step, spec.options)
            if callable(getattr(step, "setup", None)):
                self._say(f"{phase.dirname}: setting up [bold]{spec.step}[/]")
                step.setup()
            del step

    def _fit_global(self, phase: Phase, store: PhaseStore, plan: dict[str, Any]) -> None:
        done = store.state_dir / "_SUCCESS"
        if done.exists():
            return
        if store.state_dir.exists():
            shutil.rmtree(store.state_dir)  # a fit killed half-way starts over
        store.state_dir.mkdir(parents=True)
        spec = phase.global_step
        assert spec is not None
        step = build_step(spec.step, spec.options)
        if callable(getattr(step, "setup", None)):
            step.setup()
        inputs = [self.out / plan["inputs"][k] for k in plan["keys"]]
        ctx = GlobalContext(partitions=inputs, state_dir=store.state_dir, phase_dir=store.root,
                            num_cpus=self.cpus, options=dict(spec.options), prebuilt=self._take_prebuilt(phase),
                            on_parallel_done=lambda: self._prebuild_next(phase))
        self._say(f"{phase.dirname}: fitting global step [bold]{spec.step}[/] over {len(inputs)} partitions")
        t0 = time.time()
        step.fit(ctx)
        atomic_write_json(done, {"step": spec.step, "seconds": round(time.time() - t0, 3)})

    def _prebuild_next(self, phase: Phase) -> None:
        """When this phase's fit has finished its parallel tasks (its serial half leaves CPUs idle),
        start the next phase's corpus-independent set-up (``prebuild``, e.g. the decontamination
        benchmark index) as a Ray task; that fit picks it up instead of building it serially."""
        import ray

        nxt = self._phases[phase.index + 1] if phase.index + 1 < len(self._phases) else None
        spec = nxt.global_step if nxt is not None else None
        if spec is None or self.cpus <= 1 or not ray.is_initialized() or nxt.dirname in self._prebuilt:
            return
        if not callable(getattr(resolve_step_class(spec.step), "prebuild", None)):
            return
        if (PhaseStore(self.out / nxt.dirname).state_dir / "_SUCCESS").exists():
            return  # already fitted
        self._prebuilt[nxt.dirname] = ray.remote(num_cpus=1)(_run_prebuild).remote(spec.step, spec.options)

    def _take_prebuilt(self, phase: Phase) -> Any:
        ref = self._prebuilt.pop(phase.dirname, None)
        if ref is None:
            return None
        import ray

        try:
            return ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the fit then builds it itself
            self._say(f"[yellow]{phase.dirname}: prebuild failed ({type(e).__name__}: {e}); building in the fit[/]")
            return None

    def _execute(self, phase: Phase, store: PhaseStore, plan: dict[str, Any], pending: list[str]) -> dict[str, str]:
        import ray.data

        eng = self.recipe.engine
        size = max(1, min(len(pending), eng.concurrency or self.cpus))
        from secfoundry.corpus.engine.workers import run_items

        if phase.index == 0:
            items = [{"task": json.dumps(plan["tasks"][k])} for k in pending]
            kind, config = "collect", {"phase_dir": str(store.root), "partition_rows": eng.partition_rows,
                                       "compression": eng.compression, "keep_excluded": eng.keep_excluded}
        else:
            items = [{"key": k, "input": str(self.out / plan["inputs"][k])} for k in pending]
            kind, config = "phase", {"phase_dir": str(store.root),
                                     "steps": [{"step": s.step, "options": s.options, "sources": s.sources,
                                                "skip_sources": s.skip_sources} for s in phase.steps],
                                     "batch_size": eng.batch_size, "compression": eng.compression,
                                     "keep_excluded": eng.keep_excluded}
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(run_items, fn_kwargs={"kind": kind, "config": config}, batch_size=1,
                            batch_format="numpy", compute=ray.data.TaskPoolStrategy(size=size), num_cpus=1)
        errors: dict[str, str] = {}
        steps_label = ", ".join(s.step for s in phase.steps) or ("inputs" if phase.index == 0 else "copy")
        with self._progress() as prog:
            task = prog.add_task(f"{phase.dirname} [dim]({steps_label})[/]", total=len(pending), docs="") if prog else None
            docs_in = docs_out = 0
            for row in ds.iter_rows():
                docs_in += int(row["docs_in"])
                docs_out += int(row["docs_out"])
                err = str(row["error"] or "")
                if err and phase.index != 0:
                    errors[str(row["key"])] = err
                if prog is not None:
                    prog.update(task, advance=1, docs=f"{docs_in:,} → {docs_out:,} docs")
                if self.on_partition is not None:
                    self.on_partition(phase, dict(row))
        return errors

    def _progress(self):
        from contextlib import nullcontext

        if not self.show_progress:
            return nullcontext(None)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("[cyan]{task.fields[docs]}"), TimeElapsedColumn(), console=self.console)

    def _say(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg)


def _run_prebuild(name: str, options: dict[str, Any]) -> Any:
    """A global step's corpus-independent set-up, in a Ray worker (see Runner._prebuild_next)."""
    return build_step(name, options).prebuild()


class PhaseFailed(RuntimeError):
    """Some partitions of a phase failed; the completed ones are kept and a rerun retries the rest."""

    def __init__(self, phase: str, errors: dict[str, str], summary: PhaseSummary):
        self.phase, self.errors, self.summary = phase, errors, summary
        first = next(iter(errors.items()))
        super().__init__(f"{phase}: {len(errors)} partition(s) failed (rerun to retry); first: {first[0]}: {first[1][:500]}")
