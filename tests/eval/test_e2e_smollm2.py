"""End to end with the embedded SmolLM2-135M-Instruct: `eval run` (CLI) on a few items of
CTIBench-MCQ by letter log-probabilities (5-shot, cached prefix) and CyberMetric by base-style
generation, a resume that asks nothing again, then `eval report`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.e2e


def _samples(out):
    return [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]


def test_smollm2_run_resume_report(tmp_path, bench_dir):
    from secfoundry.cli import app

    out = tmp_path / "run"
    common = ["--model", "smollm2-135m-instruct", "--protocol", "faith", "--limit", "3", "--data-dir", str(bench_dir),
              "--out", str(out), "--threads", "2"]
    r = CliRunner().invoke(app, ["eval", "run", "--benchmark", "ctibench-mcq", "--mode", "logprob"] + common)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())["ctibench-mcq"]
    assert res["n"] == 3 and res["n_valid"] == 3 and res["shots"] == 5 and res["instruct"] is True
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["spec"] == "smollm2-135m-instruct" and cfg["model"]["weights_sha256"]
    assert cfg["instruct_source"] == "detected"

    # The cached-prefix scores agree with scoring prefix + question in one piece, uncached.
    from secfoundry.models import load_model

    samples = _samples(out)
    prefix = json.loads((out / "prefixes.jsonl").read_text().splitlines()[0])["prefix"]
    plain = load_model("smollm2-135m-instruct", prefix_cache=False)
    ref = plain.choice_logprobs([prefix + s["prompt"] for s in samples], samples[0]["choices"])
    for s, lp in zip(samples, ref):
        # bf16 with different batch shapes and kernels: close (measured up to ~0.11 nats), and
        # near-ties may swap the argmax
        assert s["logprobs"] == pytest.approx(lp, abs=0.2)

    # Generation, base-style (few-shot continuation of "Answer:"), in a second directory.
    gen_out = tmp_path / "gen"
    gen = [a if a != str(out) else str(gen_out) for a in common]
    r = CliRunner().invoke(app, ["eval", "run", "--benchmark", "cybermetric-80", "--mode", "generate", "--base"] + gen)
    assert r.exit_code == 0, r.output
    g = json.loads((gen_out / "results.json").read_text())["cybermetric-80"]
    assert g["n"] == 3 and g["mode"] == "generate" and g["instruct"] is False
    gs = _samples(gen_out)
    assert all(s["kind"] == "generate" and isinstance(s["output"], str) for s in gs)
    assert g["n_valid"] == sum(s["valid"] for s in gs)

    # Rerunning a finished run answers nothing again and gives the same results.
    before = (out / "results.json").read_text()
    r = CliRunner().invoke(app, ["eval", "run", "--benchmark", "ctibench-mcq", "--mode", "logprob"] + common)
    assert r.exit_code == 0, r.output
    again = json.loads((out / "results.json").read_text())["ctibench-mcq"]
    assert again["answered_now"] == 0 and again["score"] == json.loads(before)["ctibench-mcq"]["score"]

    r = CliRunner().invoke(app, ["eval", "report", str(out), str(gen_out), "--out", str(tmp_path / "report.html")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "report.html").read_text()
    assert "ctibench-mcq" in html and "cybermetric-80" in html and "data:image/png;base64," in html
