"""The evaluation runner: files and schemas, few-shot exclusion, prefix grouping, resume, trials,
permutations, backend failures. A rule-based in-process model keeps these fast and exact."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
try:  # tests/eval may or may not be a package
    from ._runner_fakes import Crash, RuleModel, ToyMCQ
except ImportError:
    from _runner_fakes import Crash, RuleModel, ToyMCQ  # noqa: E402

from secfoundry.core.errors import InputError  # noqa: E402
from secfoundry.eval.protocols import draw_shots  # noqa: E402
from secfoundry.eval.runner import RunConfig, run_eval  # noqa: E402
from secfoundry.eval.samples import SampleStore  # noqa: E402


def _cfg(out: Path, **kw) -> RunConfig:
    base = dict(model="rule:test", benchmarks=["toy-mcq"], out=out, protocol="faith", mode="logprob", limit=10,
                batch_size=4, instruct=False)
    base.update(kw)
    return RunConfig(**base)


def _samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def _expected_acc(ids: list[str]) -> float:
    """RuleModel is right on even questions, and on odd ones whose gold is A."""
    items = {it.id: it for it in ToyMCQ().load()}
    ok = sum(1 for i in ids if int(i) % 2 == 0 or items[i].gold == "A")
    return round(100.0 * ok / len(ids), 2)


def test_files_schema_and_fewshot_exclusion(tmp_path):
    model, task = RuleModel(), ToyMCQ()
    out = tmp_path / "run"
    res = run_eval(_cfg(out), model=model, tasks={"toy-mcq": task}, argv=["secfoundry", "eval", "run"])

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == {"spec": "rule:test", "backend": "RuleModel", "revision": "rule-v1"}
    assert cfg["protocol"]["shots"] is None  # the protocol default: resolved per task
    assert cfg["protocol"]["name"] == "faith" and cfg["instruct"] is False
    assert cfg["instruct_source"] == "flag"
    assert cfg["seeds"]["trial_seeds"] == [1234]
    assert cfg["versions"]["secfoundry"] and cfg["command"] == ["secfoundry", "eval", "run"]
    assert cfg["run"]["benchmarks"] == ["toy-mcq"] and "finished" in cfg

    results = json.loads((out / "results.json").read_text())
    r = results["toy-mcq"]
    for key in ("score", "accuracy", "lenient_accuracy", "n", "n_valid", "parse_failures", "stderr", "ci95",
                "headline", "higher_is_better", "trials"):
        assert key in r, key
    assert r["n"] == 10 and r["n_valid"] == 10 and r["parse_failures"] == 0 and r["shots"] == 5
    assert r["ci95"][0] <= r["score"] <= r["ci95"][1]
    assert res.results == results

    samples = _samples(out)
    assert len(samples) == 10
    shots = {s.id for s in draw_shots(task.load(), 5, 1234, 0)}
    assert not shots & {s["item_id"] for s in samples}, "few-shot items must not be scored"
    s0 = samples[0]
    for key in ("benchmark", "trial", "item_id", "variant", "prompt", "logprobs", "choices", "answer", "gold",
                "correct", "valid", "prefix_sha256"):
        assert key in s0, key
    assert r["score"] == _expected_acc([s["item_id"] for s in samples])
    assert sum(s["correct"] for s in samples) / 10 * 100 == pytest.approx(r["score"])

    # One shared prefix per trial, passed with every batch (the backend caches it), stored once.
    prefixes = {p for _k, p, _n in model.calls}
    assert len(prefixes) == 1 and next(iter(prefixes)).startswith("Header.")
    assert sum(n for _k, _p, n in model.calls) == 10 and max(n for *_x, n in model.calls) == 4
    stored = [json.loads(x) for x in (out / "prefixes.jsonl").read_text().splitlines()]
    assert len(stored) == 1 and sorted(stored[0]["shot_ids"]) == sorted(shots)


def test_resume_after_crash_matches_clean_run(tmp_path):
    clean = run_eval(_cfg(tmp_path / "clean", limit=12), model=RuleModel(), tasks={"toy-mcq": ToyMCQ()})

    out = tmp_path / "crashy"
    with pytest.raises(Crash):
        run_eval(_cfg(out, limit=12), model=RuleModel(crash_after=2), tasks={"toy-mcq": ToyMCQ()})
    assert len(_samples(out)) == 8  # two batches of 4 made it to disk
    assert not (out / "results.json").exists()
    # A half-written line from the dying process must not break the resume.
    with open(out / "samples.jsonl", "a") as fh:
        fh.write('{"benchmark": "toy-mcq", "tri')

    again = RuleModel()
    resumed = run_eval(_cfg(out, limit=12), model=again, tasks={"toy-mcq": ToyMCQ()})
    assert sum(n for *_x, n in again.calls) == 4, "only the unanswered requests are asked again"
    assert len(_samples(out)) == 12
    assert resumed.results["toy-mcq"]["score"] == clean.results["toy-mcq"]["score"]
    assert resumed.results["toy-mcq"]["answered_now"] == 4

    # Finished run: nothing left to ask.
    idle = RuleModel()
    run_eval(_cfg(out, limit=12), model=idle, tasks={"toy-mcq": ToyMCQ()})
    assert idle.calls == []


def test_resume_refuses_a_different_run(tmp_path):
    out = tmp_path / "run"
    run_eval(_cfg(out, limit=4), model=RuleModel(), tasks={"toy-mcq": ToyMCQ()})
    with pytest.raises(InputError, match="shots"):
        run_eval(_cfg(out, limit=4, shots=2), model=RuleModel(), tasks={"toy-mcq": ToyMCQ()})
    m = RuleModel()
    run_eval(_cfg(out, limit=4, shots=2, fresh=True), model=m, tasks={"toy-mcq": ToyMCQ()})
    assert len(_samples(out)) == 4 and len(m.calls) == 1


def test_trials_report_mean_std_and_draw_new_shots(tmp_path):
    out = tmp_path / "run"
    model = RuleModel()
    res = run_eval(_cfg(out, trials=3, temperature=0.3, limit=None), model=model,
                   tasks={"toy-mcq": ToyMCQ()}).results["toy-mcq"]
    assert res["trials"] == 3 and len(res["per_trial"]) == 3
    assert len({p for _k, p, _n in model.calls}) == 3, "one few-shot prefix per trial"
    samples = _samples(out)
    per_trial = [_expected_acc([s["item_id"] for s in samples if s["trial"] == t]) for t in range(3)]
    assert [p["score"] for p in res["per_trial"]] == per_trial
    assert res["score"] == pytest.approx(sum(per_trial) / 3)
    assert res["score_std"] == pytest.approx(res["std"]["score"])
    assert res["higher_is_better"] is True and "higher_is_better" not in res["std"]
    assert res["n"] == 25  # 30 items minus 5 shots, every trial
    for t in range(3):
        shots = {s.id for s in draw_shots(ToyMCQ().load(), 5, 1234, t)}
        assert not shots & {s["item_id"] for s in samples if s["trial"] == t}


def test_permute_reports_rotations_and_consistency(tmp_path):
    res = run_eval(_cfg(tmp_path / "run", permute=True, limit=8), model=RuleModel(),
                   tasks={"toy-mcq": ToyMCQ()}).results["toy-mcq"]
    p = res["permute"]
    assert p["variants"] == 4 and p["n"] == 8
    # Even questions: always the marked option (consistent); odd: always "A" whatever it shows.
    samples = _samples(tmp_path / "run")
    ids = sorted({s["item_id"] for s in samples}, key=int)
    assert p["consistency"] == pytest.approx(100 * sum(int(i) % 2 == 0 for i in ids) / 8)
    assert p["variant_scores"]["original"] == res["score"] and len(p["variant_scores"]) == 4
    assert res["score"] == _expected_acc(ids)  # the headline is the unrotated variant
    assert len(samples) == 32


def test_generation_mode_and_backend_errors_are_invalid(tmp_path):
    task = ToyMCQ()
    items = task.load()
    shots = {s.id for s in draw_shots(items, 5, 1234, 0)}
    victim = next(it.id for it in items if it.id not in shots)
    out = tmp_path / "run"
    res = run_eval(_cfg(out, mode="generate", instruct=True, limit=6), model=RuleModel(fail_ids={victim}),
                   tasks={"toy-mcq": task}).results["toy-mcq"]
    assert res["n"] == 6 and res["n_valid"] == 5 and res["parse_failures"] == 1
    bad = [s for s in _samples(out) if s["item_id"] == victim]
    assert bad[0]["error"].startswith("RuntimeError") and bad[0]["valid"] is False
    assert all(s["kind"] == "generate" and s["output"] for s in _samples(out) if s["item_id"] != victim)
    # Errors are retried on resume; the model is healthy now.
    healed = RuleModel()
    res2 = run_eval(_cfg(out, mode="generate", instruct=True, limit=6), model=healed,
                    tasks={"toy-mcq": task}).results["toy-mcq"]
    assert sum(n for *_x, n in healed.calls) == 1 and res2["n_valid"] == 6


def test_instruct_detected_from_chat_template(tmp_path):
    out = tmp_path / "run"
    run_eval(_cfg(out, instruct=None, limit=3), model=RuleModel(chat=True), tasks={"toy-mcq": ToyMCQ()})
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["instruct"] is True and cfg["instruct_source"] == "detected"
    assert json.loads((out / "results.json").read_text())["toy-mcq"]["shots"] == 0  # FAITH: instruct is 0-shot


def test_sample_store_rejects_corrupt_middle_line(tmp_path):
    p = tmp_path / "samples.jsonl"
    p.write_text('{"benchmark": "x", "trial": 0, "item_id": "1", "variant": ""}\nnot json\n')
    with pytest.raises(InputError, match="row 2"):
        SampleStore(p)


def test_real_tasks_fewshot_and_generation_fallback(tmp_path, bench_dir):
    """Real CTIBench tasks on a few items: MCQ by letter log-probabilities (5-shot prefix shared
    by the batch), and RCM (not multiple choice) falling back to base-style generation."""
    from secfoundry.eval.benchmarks import get_task

    model = RuleModel()
    out = tmp_path / "real"
    res = run_eval(RunConfig(model="rule:test", benchmarks=["ctibench-mcq", "ctibench-rcm"], out=out,
                             mode="logprob", limit=4, data_dir=bench_dir),
                   model=model, tasks={n: get_task(n) for n in ("ctibench-mcq", "ctibench-rcm")}).results
    mcq, rcm = res["ctibench-mcq"], res["ctibench-rcm"]
    assert mcq["n"] == 4 and mcq["n_valid"] == 4 and mcq["shots"] == 5 and mcq["mode"] == "logprob"
    assert "mode_fallback" in rcm and rcm["mode"] == "generate" and rcm["n"] == 4
    samples = _samples(out)
    mcq_s = [s for s in samples if s["benchmark"] == "ctibench-mcq"]
    assert all(s["answer"] == "A" for s in mcq_s)  # RuleModel answers A on unmarked questions
    assert mcq["score"] == pytest.approx(100 * sum(s["gold"] == "A" for s in mcq_s) / 4)
    prefixes = [p for k, p, _n in model.calls if k == "choice"]
    assert len(set(prefixes)) == 1 and prefixes[0].startswith("The following are multiple choice questions")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["datasets"]["ctibench-mcq"], "dataset files and sha256 are recorded"


def test_quickstart_group_resolution(bench_dir):
    from secfoundry.eval.plan import resolve_benchmarks

    names, quick = resolve_benchmarks(["quickstart"], bench_dir)
    assert quick and "ctibench-mcq" in names and "cybermetric-500" in names
    assert "cybermetric-10000" not in names and "mmlu" not in names  # not available locally
    names, quick = resolve_benchmarks(["ctibench", "cybermetric-80"], bench_dir)
    assert not quick and names[-1] == "cybermetric-80" and "ctibench-taa" in names
    with pytest.raises(InputError, match="unknown benchmark"):
        resolve_benchmarks(["nope"], bench_dir)


def test_split_prefix_moves_trailing_whitespace():
    from secfoundry.eval.execute import split_prefix

    assert split_prefix("Header.\n\nQ1\nAnswer: B\n\n", ["Q2", "Q3"]) == (
        "Header.\n\nQ1\nAnswer: B", ["\n\nQ2", "\n\nQ3"])
    assert split_prefix("no-ws", ["x"]) == ("no-ws", ["x"])
    assert split_prefix("", ["x"]) == ("", ["x"])
    assert split_prefix("\n\n", ["x"]) == ("\n\n", ["x"])  # nothing left to cache: unchanged


def test_extending_a_run_keeps_earlier_benchmarks(tmp_path):
    out = tmp_path / "run"
    tasks = {"toy-mcq": ToyMCQ(), "toy-b": ToyMCQ(n=12)}
    run_eval(_cfg(out, limit=3), model=RuleModel(), tasks=tasks)
    m = RuleModel()
    run_eval(_cfg(out, limit=3, benchmarks=["toy-b"]), model=m, tasks=tasks)
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"toy-mcq", "toy-b"} and sum(n for *_x, n in m.calls) == 3
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["run"]["benchmarks"] == ["toy-mcq", "toy-b"] and len(cfg["resumed"]) == 1


def test_batches_respect_rows_and_padding_budget():
    from secfoundry.eval.execute import batches
    from secfoundry.eval.task import Request

    reqs = [Request(item_id=str(i), kind="generate", prompt="x" * n) for i, n in
            enumerate([100] * 10 + [9000, 8000, 7000])]
    out = batches(reqs, batch_size=4, char_budget=20000)
    assert [len(b) for b in out] == [2, 2, 4, 4, 1]  # 9000+8000 (padded 18000), 7000+100, then 100s
    for b in out:
        assert len(b) <= 4 and max(len(r.prompt) for r in b) * len(b) <= 20000
    assert sorted(r.item_id for b in out for r in b) == sorted(r.item_id for r in reqs)
    choice = [Request(item_id="c", kind="choice", prompt="q" * 10, prefix="p" * 100000)]
    assert batches(choice, 4, 20000) == [choice]  # the cached prefix does not count


def test_headline_name_follows_the_protocol():
    from secfoundry.eval.score import headline_name as _headline_name

    class VSP(ToyMCQ):
        headline = "mad"

    assert _headline_name(VSP(), {"score": 0.66, "mad": 3.4, "vsp_score": 0.66, "vsp_score_stderr": 0.66}) == "vsp_score"
    assert _headline_name(VSP(), {"score": 1.9, "mad": 1.9, "vsp_score": 0.8}) == "mad"
    assert _headline_name(VSP(), {"score": 1.9, "headline": "custom"}) == "custom"
