"""Run benchmarks against a model: trials, few-shot draws, batching by shared prefix, resume.

The runner owns everything that is not benchmark-specific (see ``eval/task.py``):

* which items are scored (few-shot examples drawn for a trial are excluded from scoring),
* grouping requests so that all requests sharing a few-shot prefix reach the backend together
  (the backend computes that prefix once and reuses its KV cache),
* ``samples.jsonl``: one line per request, appended and fsync'ed per batch, so an interrupted
  run resumes from what was already written (keys: benchmark, trial, item, variant),
* ``results.json`` (metrics per benchmark, mean ± std across trials, CIs) and ``config.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from secfoundry.errors import InputError
from secfoundry.eval.task import Item, Parsed, Protocol, Request, Response, Task
from secfoundry.models.base import GenerationConfig, LanguageModel

# Groups accepted by --benchmark besides task names and family names.
GROUPS = ("quickstart", "all")
QUICKSTART_LIMIT = 20  # items per benchmark in the quickstart group unless --limit says otherwise
QUICKSTART_MAX_NEW_TOKENS = 48  # keeps generation benchmarks to seconds per item on a CPU
QUICKSTART_GEN_LIMIT = 5  # generation benchmarks in quickstart: long few-shot prompts, so fewer items
FAITH_BASE_SHOTS = 5


@dataclass
class RunConfig:
    """Everything that defines a run (recorded in config.json; a resumed run must match it)."""

    model: str
    benchmarks: list[str]
    out: Path
    protocol: str = "faith"
    mode: str = "generate"
    shots: int | None = None
    trials: int = 1
    temperature: float = 0.0
    limit: int | None = None
    seed: int = 1234
    permute: bool = False
    score_options: bool = False
    data_dir: Path | None = None
    batch_size: int = 16
    instruct: bool | None = None  # None: detected from the model (chat template present)
    max_new_tokens: int | None = None
    fresh: bool = False  # discard samples of an earlier run in the same directory
    gen_token_cap: int | None = None  # upper bound on max_new_tokens (quickstart keeps generation short)
    gen_limit: int | None = None  # items per generation benchmark when lower than ``limit`` (quickstart)
    bootstrap: int = 1000  # bootstrap resamples for the 95% CI of each benchmark's score
    model_options: dict[str, Any] = field(default_factory=dict)  # passed to load_model (threads, dtype...)

    def identity(self) -> dict[str, Any]:
        """The fields that must agree for a directory to be resumed."""
        return {k: getattr(self, k) for k in ("model", "protocol", "mode", "shots", "trials", "temperature",
                                              "limit", "seed", "permute", "score_options", "instruct",
                                              "max_new_tokens", "gen_token_cap", "gen_limit")}


# --------------------------------------------------------------------------------------------
# Benchmark selection


def _registry():
    # Imported lazily: the benchmark registry is written alongside the runner.
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
    reg = _registry()
    all_names = list(reg.list_tasks())
    out: list[str] = []
    quick = False
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name == "quickstart":
            quick = True
            chosen = [n for n in all_names if task_available_locally(reg.get_task(n), data_dir)]
            if not chosen:
                raise InputError(f"no benchmark data found under {data_dir} for the quickstart group",
                                 file=str(data_dir))
        elif name == "all":
            chosen = all_names
        elif name in all_names:
            chosen = [name]
        else:
            chosen = [n for n in all_names if reg.get_task(n).family == name]
            if not chosen:
                raise InputError(f"unknown benchmark {name!r}; known: {', '.join(all_names)} "
                                 f"(groups: {', '.join(GROUPS)})", field="--benchmark")
        out.extend(n for n in chosen if n not in out)
    if not out:
        raise InputError("no benchmark selected", field="--benchmark")
    return out, quick


# --------------------------------------------------------------------------------------------
# Protocol and item selection


def resolve_protocol(cfg: RunConfig, instruct: bool) -> Protocol:
    return Protocol(name=cfg.protocol, mode=cfg.mode, shots=cfg.shots, instruct=instruct,  # type: ignore[arg-type]
                    temperature=cfg.temperature, trials=cfg.trials, seed=cfg.seed,
                    max_new_tokens=cfg.max_new_tokens, permute=cfg.permute, score_options=cfg.score_options)


def resolve_shots(protocol: Protocol) -> int:
    """Shots for tasks without their own default: FAITH gives base models 5, others 0."""
    if protocol.shots is not None:
        return protocol.shots
    return FAITH_BASE_SHOTS if (protocol.name == "faith" and not protocol.instruct) else 0


def draw_shots(items: list[Item], k: int, seed: int, trial: int) -> list[Item]:
    """The few-shot examples of one trial: ``k`` items drawn with ``seed + trial``.

    The same draw is shared by every question of the trial (one prefix, computed once).
    """
    if k <= 0 or not items:
        return []
    rng = random.Random(seed + trial)
    idx = sorted(rng.sample(range(len(items)), min(k, len(items))))
    return [items[i] for i in idx]


def scored_items(items: list[Item], shots: list[Item], limit: int | None) -> list[Item]:
    """Items scored in a trial: everything except that trial's shots, then the first ``limit``."""
    taken = {it.id for it in shots}
    rest = [it for it in items if it.id not in taken]
    return rest[:limit] if limit is not None else rest


# --------------------------------------------------------------------------------------------
# Samples file (append-only, resumable)


def _jsonable(x: Any) -> Any:
    if isinstance(x, (set, frozenset)):
        return sorted(_jsonable(v) for v in x)
    if isinstance(x, tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _jsonable(dataclasses.asdict(x))
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


SampleKey = tuple[str, int, str, str]  # benchmark, trial, item id, variant


class SampleStore:
    """``samples.jsonl``: one JSON line per answered request, durable per batch."""

    def __init__(self, path: Path):
        self.path = path
        self.done: dict[SampleKey, dict[str, Any]] = {}
        if path.exists():
            self._load()
        self._fh = open(path, "a", encoding="utf-8")

    def _load(self) -> None:
        raw = self.path.read_bytes()
        # A crash can leave a partial last line: drop it so appends start on a fresh line.
        if raw and not raw.endswith(b"\n"):
            cut = raw.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
            raw = raw[:cut]
        for lineno, line in enumerate(raw.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key = (rec["benchmark"], int(rec["trial"]), str(rec["item_id"]), rec.get("variant", ""))
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(f"unreadable sample ({e}); remove the line or rerun with --fresh",
                                 file=str(self.path), row=lineno) from e
            self.done[key] = rec

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        recs = list(records)
        if not recs:
            return
        self._fh.write("".join(json.dumps(_jsonable(r), ensure_ascii=False) + "\n" for r in recs))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        for r in recs:
            self.done[(r["benchmark"], int(r["trial"]), str(r["item_id"]), r.get("variant", ""))] = r

    def close(self) -> None:
        self._fh.close()


def response_from_sample(rec: dict[str, Any]) -> Response:
    return Response(item_id=str(rec["item_id"]), text=rec.get("output"), logprobs=rec.get("logprobs"),
                    error=rec.get("error"))


# --------------------------------------------------------------------------------------------
# Executing requests


def _with_prefix(prompt: Any, prefix: str) -> Any:
    """Backends without a prefix argument (generation) see the prefix glued to the prompt."""
    if not prefix:
        return prompt
    if isinstance(prompt, str):
        return prefix + prompt
    msgs = [dict(m) for m in prompt]
    for m in msgs:  # chat prompts: the shared block opens the first user turn
        if m.get("role") == "user":
            m["content"] = prefix + m["content"]
            break
    else:
        msgs.insert(0, {"role": "user", "content": prefix})
    return msgs


def _gen_key(g: GenerationConfig | None) -> str:
    return json.dumps(dataclasses.asdict(g) if g else None, sort_keys=True)


# Padded batches cost (rows x longest prompt), and attention grows with the square of the length:
# long prompts (CTIBench-TAA reports, ~3k tokens) go in small batches, short ones in full batches.
BATCH_CHAR_BUDGET = 24_000  # about 6k tokens of prompt text per batch


def _prompt_chars(r: Request) -> int:
    """Prompt length the backend actually runs (the cached prefix of a choice request is free)."""
    p = r.prompt if isinstance(r.prompt, str) else "".join(m.get("content", "") for m in r.prompt)
    return len(p) + (len(r.prefix) if r.kind == "generate" else 0)


def batches(reqs: list[Request], batch_size: int, char_budget: int = BATCH_CHAR_BUDGET) -> list[list[Request]]:
    """Length-sorted batches of at most ``batch_size`` rows whose padded size (rows x longest
    prompt) stays within ``char_budget`` (a single longer prompt still gets its own batch)."""
    ordered = sorted(reqs, key=lambda r: -_prompt_chars(r))
    out: list[list[Request]] = []
    cur: list[Request] = []
    longest = 0
    for r in ordered:
        n = _prompt_chars(r)
        if cur and (len(cur) >= batch_size or max(longest, n) * (len(cur) + 1) > char_budget):
            out.append(cur)
            cur, longest = [], 0
        cur.append(r)
        longest = max(longest, n)
    if cur:
        out.append(cur)
    return out


def execute(model: LanguageModel, requests: list[Request], batch_size: int,
            on_batch: Callable[[list[Request], list[Response]], None]) -> None:
    """Answer ``requests`` in batches; ``on_batch`` receives each finished batch.

    Choice requests are grouped by (prefix, choices): a group shares its few-shot prefix, so a
    prefix-caching backend computes it once. Within a group, prompts are sorted by length and
    batched under a padding budget. Backend failures become ``Response.error`` (invalid, never
    a crash).
    """
    groups: dict[tuple, list[Request]] = defaultdict(list)
    for r in requests:
        if r.kind == "choice":
            groups[("choice", r.prefix, tuple(r.choices))].append(r)
        else:
            groups[("generate", _gen_key(r.gen))].append(r)
    for key, reqs in groups.items():
        for batch in batches(reqs, batch_size):
            on_batch(batch, _answer(model, key[0], batch))


def _answer(model: LanguageModel, kind: str, batch: list[Request]) -> list[Response]:
    try:
        if kind == "choice":
            return _answer_choice(model, batch)
        prompts = [_with_prefix(r.prompt, r.prefix) for r in batch]
        texts = model.generate(prompts, batch[0].gen)
        return [Response(item_id=r.item_id, text=t) for r, t in zip(batch, texts, strict=True)]
    except NotImplementedError:
        raise  # a capability the backend lacks is a configuration error, not an invalid answer
    except Exception as e:  # noqa: BLE001 - recorded per request, never stops the run
        if len(batch) > 1:  # isolate the failing request(s)
            return [resp for r in batch for resp in _answer(model, kind, [r])]
        return [Response(item_id=batch[0].item_id, error=f"{type(e).__name__}: {e}")]


def split_prefix(prefix: str, contexts: list[str]) -> tuple[str, list[str]]:
    """Move the prefix's trailing whitespace into every context.

    Backends tokenize the cached prefix and each context separately. Byte-level BPE tokenizers
    (GPT-2 style, e.g. SmolLM2) tokenize "B\n\n" alone as one "\n\n" token but "B\n\nHow" as
    "\n", "\n", "How"; cutting before the whitespace run ("...Answer: B" | "\n\nHow...") gives
    exactly the tokens of the joined text, so cached and uncached scoring (and other harnesses
    that tokenize the whole prompt) see the same ids.
    """
    head = prefix.rstrip()
    tail = prefix[len(head):]
    if not tail or not head:
        return prefix, contexts
    return head, [tail + c for c in contexts]


def _answer_choice(model: LanguageModel, batch: list[Request]) -> list[Response]:
    choices = list(batch[0].choices)
    contexts = [r.prompt for r in batch]
    if any(not isinstance(c, str) for c in contexts):
        raise InputError("choice requests must carry a text prompt", field="Request.prompt")
    prefix, contexts = split_prefix(batch[0].prefix, contexts)  # type: ignore[arg-type]
    try:
        lps = model.choice_logprobs(contexts, choices, prefix=prefix)
    except NotImplementedError:
        # Fall back to full continuation log-likelihoods (one (context, choice) pair each).
        pairs = [(c, ch) for c in contexts for ch in choices]
        ll = model.loglikelihood(pairs, prefix=prefix)
        lps = [[ll[i * len(choices) + j][0] for j in range(len(choices))] for i in range(len(contexts))]
    return [Response(item_id=r.item_id, logprobs=[float(x) for x in lp]) for r, lp in zip(batch, lps, strict=True)]


# --------------------------------------------------------------------------------------------
# Scoring helpers


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(float(v)):
        return float(v)
    return None


def _safe_score(task: Task, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> dict[str, Any] | None:
    try:
        return task.score(items, parsed, protocol)
    except (ZeroDivisionError, ValueError, KeyError, TypeError, IndexError):
        return None


def item_scores(task: Task, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> list[float | None]:
    """Each item's own headline score (None when the task cannot score a single item)."""
    out: list[float | None] = []
    for it, p in zip(items, parsed):
        m = _safe_score(task, [it], [p], protocol)
        out.append(_num(m.get("score")) if m else None)
    return out


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _std(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def confidence(task: Task, items: list[Item], parsed: list[Parsed], protocol: Protocol, score: float | None,
               per_item: list[float | None], n_boot: int, seed: int) -> dict[str, Any]:
    """stderr and a bootstrap 95% CI of the headline score.

    When the score is the mean of per-item scores (over all items, or over parseable ones as
    CTIBench's official denominator does) the bootstrap resamples those; otherwise (F1, set
    metrics) it rescores resamples of the items, within a time budget.
    """
    if score is None or not items:
        return {}
    rng = random.Random(seed)
    vals: list[float] = []
    for cand in ([s for s in per_item if s is not None],
                 [s for s, p in zip(per_item, parsed) if s is not None and p.valid]):
        if cand and abs(_mean(cand) - score) <= 1e-3 * max(1.0, abs(score)):  # tasks round their scores
            vals = cand
            break
    if vals:
        n = len(vals)
        boots = sorted(_mean([vals[rng.randrange(n)] for _ in range(n)]) for _ in range(n_boot))
        stderr: float | None = _std(vals) / math.sqrt(n) if n > 1 else 0.0
        method = "per-item"
    else:
        budget = time.perf_counter() + 10.0
        boots = []
        n = len(items)
        for _ in range(min(n_boot, 200)):
            idx = [rng.randrange(n) for _ in range(n)]
            m = _safe_score(task, [items[i] for i in idx], [parsed[i] for i in idx], protocol)
            s = _num(m.get("score")) if m else None
            if s is not None:
                boots.append(s)
            if time.perf_counter() > budget:
                break
        boots.sort()
        stderr = _std(boots) if len(boots) > 1 else None
        method = "rescore"
    if len(boots) < 2:
        return {"stderr": stderr}
    lo = boots[int(0.025 * (len(boots) - 1))]
    hi = boots[int(math.ceil(0.975 * (len(boots) - 1)))]
    return {"stderr": stderr, "ci95": [lo, hi], "ci_method": f"bootstrap-{method}", "n_boot": len(boots)}


def aggregate_trials(per_trial: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every numeric metric across trials, plus their std when there are several."""
    keys: list[str] = []
    for m in per_trial:
        keys.extend(k for k in m if k not in keys)
    out: dict[str, Any] = {}
    std: dict[str, float] = {}
    for k in keys:
        vals = [_num(m.get(k)) for m in per_trial]
        nums = [v for v in vals if v is not None]
        if any(isinstance(m.get(k), bool) for m in per_trial):
            out[k] = per_trial[0].get(k)  # flags (higher_is_better) are not averaged
        elif nums and len(nums) == len(vals):
            mean = _mean(nums)
            ints = all(isinstance(m.get(k), int) and not isinstance(m.get(k), bool) for m in per_trial)
            out[k] = int(mean) if ints and mean.is_integer() else mean
            if len(per_trial) > 1:
                std[k] = _std(nums)
        elif k not in out:
            # Non-numeric (or partly missing) values: keep the first trial's.
            out[k] = per_trial[0].get(k)
    if len(per_trial) > 1:
        out["std"] = std
    return out


# --------------------------------------------------------------------------------------------
# The run


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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dataset_hashes(task: Task, data_dir: Path | None) -> list[dict[str, Any]]:
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


def _describe_data(task: Task, data_dir: Path | None) -> Any:
    hook = getattr(task, "data_description", None)
    if callable(hook):
        try:
            return hook(data_dir)
        except Exception:  # noqa: BLE001 - e.g. files not downloaded yet: hash what is local
            pass
    return dataset_hashes(task, data_dir)


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


class Progress:
    """What the runner reports while it works (the CLI plugs a rich progress bar in here)."""

    def start(self, benchmark: str, total: int, done: int) -> None: ...

    def advance(self, benchmark: str, n: int) -> None: ...

    def finish(self, benchmark: str) -> None: ...

    def note(self, benchmark: str, message: str) -> None: ...


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _check_resumable(out: Path, cfg: RunConfig, benchmarks: list[str]) -> None:
    cfg_path = out / "config.json"
    if not cfg_path.exists() or not (out / "samples.jsonl").exists():
        return
    try:
        old = json.loads(cfg_path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise InputError(f"unreadable config ({e}); rerun with --fresh", file=str(cfg_path)) from e
    prev = old.get("run", {})
    mine = _jsonable(cfg.identity())
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
    from secfoundry.paths import benchmark_data_dir

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
        tasks = {n: _registry().get_task(n) for n in names}
    if quick:
        if cfg.limit is None:
            cfg.limit = QUICKSTART_LIMIT
        if cfg.gen_token_cap is None:
            cfg.gen_token_cap = QUICKSTART_MAX_NEW_TOKENS
        if cfg.gen_limit is None:
            cfg.gen_limit = min(QUICKSTART_GEN_LIMIT, cfg.limit)

    if cfg.fresh:
        for f in ("samples.jsonl", "results.json", "prefixes.jsonl"):
            (out / f).unlink(missing_ok=True)
    if model is None:
        from secfoundry.models import load_model

        model = load_model(cfg.model, **cfg.model_options)
    instruct_source = "detected" if cfg.instruct is None else "flag"
    instruct = detect_instruct(model) if cfg.instruct is None else cfg.instruct
    cfg.instruct = instruct
    _check_resumable(out, cfg, names)
    protocol = resolve_protocol(cfg, instruct)

    try:
        describe = model.describe()
    except Exception as e:  # noqa: BLE001
        describe = {"spec": cfg.model, "describe_error": str(e)}
    config = {
        "run": _jsonable(cfg.identity()) | {"benchmarks": names, "data_dir": str(data_dir) if data_dir else None,
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
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    previous = _read_json(out / "config.json") if not cfg.fresh else None
    if previous and (out / "samples.jsonl").exists():
        # Resuming (or extending with more benchmarks): keep the history of the directory.
        config["started"] = previous.get("started", config["started"])
        config["resumed"] = previous.get("resumed", []) + [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())]
        old_names = previous.get("run", {}).get("benchmarks", [])
        config["run"]["benchmarks"] = old_names + [n for n in names if n not in old_names]
        config["datasets"] = previous.get("datasets", {}) | config["datasets"]
    _write_json(out / "config.json", config)

    results_path = out / "results.json"
    results: dict[str, Any] = {}
    if previous and (out / "samples.jsonl").exists():
        results.update(_read_json(results_path) or {})  # benchmarks of earlier invocations stay
    store = SampleStore(out / "samples.jsonl")
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
            _write_json(results_path, results)  # partial results survive a later crash
    finally:
        store.close()
    config["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write_json(out / "config.json", config)
    return outcome


@dataclass
class TrialPlan:
    trial: int
    protocol: Protocol  # the protocol as the task sees it in this trial
    shots: list[Item]
    scored: list[Item]
    requests: list[Request]


def _plan_trials(task: Task, items: list[Item], protocol: Protocol, cfg: RunConfig,
                 limit: int | None = None) -> list[TrialPlan]:
    pool = task.eligible(items, protocol) if hasattr(task, "eligible") else items
    plan: list[TrialPlan] = []
    for trial in range(protocol.trials):
        if _task_draws_shots(task):
            tp = protocol  # the task applies its own shot defaults and draws from the pool
            shots = task.draw_shots(pool, tp, trial)  # type: ignore[attr-defined]
        else:
            tp = dataclasses.replace(protocol, shots=resolve_shots(protocol))
            shots = draw_shots(pool, tp.shots or 0, tp.seed, trial)
        scored = scored_items(pool, shots, limit)
        shot_ids = {s.id for s in shots}
        reqs = [r for r in task.requests(scored, tp, trial, pool if _task_draws_shots(task) else shots)
                if r.item_id not in shot_ids]
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


def _task_draws_shots(task: Task) -> bool:
    """Tasks overriding the ``Task.draw_shots`` hook choose their own shots (and defaults)."""
    hook = getattr(Task, "draw_shots", None)
    own = getattr(type(task), "draw_shots", None)
    return own is not None and own is not hook


def _run_benchmark(name: str, task: Task, model: LanguageModel, protocol: Protocol, cfg: RunConfig,
                   data_dir: Path | None, store: SampleStore, out: Path, progress: Progress) -> BenchmarkOutcome:
    t0 = time.perf_counter()
    items = task.load(data_dir)
    by_id = {it.id: it for it in items}
    if len(by_id) != len(items):
        raise InputError(f"{name}: item ids are not unique", field="Item.id")

    # Plan every trial first so the progress bar knows the total.
    fallback = None
    try:
        plan = _plan_trials(task, items, protocol, cfg, cfg.limit)
        if cfg.gen_limit is not None and cfg.limit is not None and cfg.gen_limit < cfg.limit and all(
                r.kind == "generate" for p in plan for r in p.requests):
            plan = _plan_trials(task, items, protocol, cfg, cfg.gen_limit)
    except InputError:
        raise
    except ValueError as e:
        if protocol.mode != "logprob":
            raise InputError(str(e), field="--benchmark") from e
        # Not a multiple-choice-by-letter benchmark (RCM, VSP, ATE, TAA, multi-answer MCQ):
        # ask it base-style instead (few-shot continuation, short generation), and say so.
        fallback = f"logprob mode not applicable ({e}); generated base-style instead"
        limit = min(x for x in (cfg.limit, cfg.gen_limit) if x is not None) if (cfg.limit or cfg.gen_limit) else None
        plan = _plan_trials(task, items, dataclasses.replace(protocol, mode="generate", instruct=False), cfg, limit)
        progress.note(name, "not single-answer multiple choice: generated base-style (few-shot continuation)")
    _record_prefixes(out, name, plan)

    total = sum(len(p.requests) for p in plan)
    # Backend failures recorded earlier are retried (a server may be back); answers are kept.
    todo_by_trial = [[r for r in p.requests
                      if "error" in store.done.get((name, p.trial, r.item_id, r.variant), {"error": 1})]
                     for p in plan]
    todo = sum(len(t) for t in todo_by_trial)
    progress.start(name, total, total - todo)

    for p, todo_reqs in zip(plan, todo_by_trial):
        def on_batch(batch: list[Request], responses: list[Response], p: TrialPlan = p) -> None:
            recs = []
            for req, resp in zip(batch, responses):
                item = by_id[req.item_id]
                parsed = _parse(task, item, req, resp, p.protocol)
                recs.append(_sample_record(task, name, p.trial, item, req, resp, parsed))
            store.append(recs)
            progress.advance(name, len(batch))

        if todo_reqs:
            execute(model, todo_reqs, cfg.batch_size, on_batch)
    progress.finish(name)

    result = _score_benchmark(name, task, cfg, plan, by_id, store)
    elapsed = time.perf_counter() - t0
    if fallback:
        result["mode_fallback"] = fallback
    result["elapsed_s"] = round(elapsed, 3)
    result["answered_now"] = todo
    if todo and elapsed > 0:
        result["requests_per_s"] = round(todo / elapsed, 3)
    return BenchmarkOutcome(name=name, result=result, requests=total, answered=todo, elapsed_s=elapsed)


def _record_prefixes(out: Path, name: str, plan: list) -> None:
    """Shared few-shot prefixes are stored once here (samples.jsonl refers to them by sha256)."""
    path = out / "prefixes.jsonl"
    seen = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                seen.add(json.loads(line)["sha256"])
            except (ValueError, KeyError):
                continue
    new = []
    for tp in plan:
        for p in sorted({r.prefix for r in tp.requests if r.prefix}):
            h = hashlib.sha256(p.encode()).hexdigest()
            if h not in seen:
                seen.add(h)
                new.append({"sha256": h, "benchmark": name, "trial": tp.trial,
                            "shot_ids": [s.id for s in tp.shots], "prefix": p})
    if new:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new))


def _parse(task: Task, item: Item, req: Request, resp: Response, protocol: Protocol) -> Parsed:
    if resp.error is not None:
        return Parsed()
    try:
        return task.parse(item, req, resp, protocol)
    except Exception:  # noqa: BLE001 - a parser failure is an unparseable answer, not a crash
        return Parsed()


def _sample_record(task: Task, name: str, trial: int, item: Item, req: Request, resp: Response,
                   parsed: Parsed) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "benchmark": name, "trial": trial, "item_id": item.id, "variant": req.variant,
        "kind": req.kind, "prompt": req.prompt,
        "prefix_sha256": hashlib.sha256(req.prefix.encode()).hexdigest() if req.prefix else None,
    }
    if req.kind == "choice":
        rec["choices"] = req.choices
        rec["choice_labels"] = req.choice_labels
        rec["logprobs"] = resp.logprobs
    else:
        rec["output"] = resp.text
    if resp.error is not None:
        rec["error"] = resp.error
    if req.meta:
        rec["request_meta"] = req.meta
    rec.update({"answer": parsed.answer, "lenient": parsed.lenient, "valid": parsed.valid, "gold": item.gold,
                "correct": is_correct(task, item, parsed)})
    return rec


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


def _score_benchmark(name: str, task: Task, cfg: RunConfig, plan: list[TrialPlan],
                     by_id: dict[str, Item], store: SampleStore) -> dict[str, Any]:
    per_trial: list[dict[str, Any]] = []
    permute_trials: list[dict[str, Any]] = []
    ci: dict[str, Any] = {}
    for tp in plan:
        parsed_by_variant: dict[str, dict[str, Parsed]] = defaultdict(dict)
        for r in tp.requests:
            rec = store.done.get((name, tp.trial, r.item_id, r.variant))
            if rec is None:
                continue
            parsed_by_variant[r.variant][r.item_id] = _parse(task, by_id[r.item_id], r, response_from_sample(rec),
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
                per_item = item_scores(task, items, parsed, tp.protocol)
                ci = confidence(task, items, parsed, tp.protocol, _num(metrics.get("score")), per_item,
                                cfg.bootstrap, tp.protocol.seed)
        if len(parsed_by_variant) > 1:
            permute_trials.append(_permutation_metrics(task, tp.protocol, tp.scored, parsed_by_variant))

    result: dict[str, Any] = {"benchmark": name, "headline": _headline_name(task, per_trial[0] if per_trial else {}),
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


def _headline_name(task: Task, metrics: dict[str, Any]) -> str:
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


def _permutation_metrics(task: Task, protocol: Protocol, scored: list[Item],
                         parsed_by_variant: dict[str, dict[str, Parsed]]) -> dict[str, Any]:
    """Score under each rotation of the options, their mean, and consistency: the share (%) of
    items whose answer (in original labels) is the same valid answer under every rotation.
    Uses the task's ``score_variants`` hook when it has one."""
    variants = sorted(parsed_by_variant)
    common = [it for it in scored if all(it.id in parsed_by_variant[v] for v in variants)]
    by_variant = {v: [parsed_by_variant[v][it.id] for it in common] for v in variants}
    hook = getattr(task, "score_variants", None)
    out: dict[str, Any] = {}
    if callable(hook) and common:
        try:
            full = hook(common, by_variant, protocol)
            out = {k: full[k] for k in ("variant_scores", "variant_mean", "consistency") if k in full}
        except Exception:  # noqa: BLE001 - fall back to the generic computation below
            out = {}
    if not out:
        per = {}
        for v in variants:
            m = _safe_score(task, common, by_variant[v], protocol) if common else None
            per[v or "original"] = _num(m.get("score")) if m else None
        nums = [x for x in per.values() if x is not None]
        same = sum(1 for i in range(len(common))
                   if all(by_variant[v][i].valid for v in variants)
                   and len({json.dumps(_jsonable(_norm(by_variant[v][i].answer))) for v in variants}) == 1)
        out = {"variant_scores": per, "variant_mean": _mean(nums) if nums else None,
               "consistency": 100.0 * same / len(common) if common else None}
    correct_all = sum(1 for i, it in enumerate(common) if all(is_correct(task, it, by_variant[v][i]) for v in variants))
    out["correct_in_every_variant"] = 100.0 * correct_all / len(common) if common else None
    out["variants"] = len(variants)
    out["n"] = len(common)
    return out
