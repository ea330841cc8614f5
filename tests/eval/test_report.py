"""`eval report`: side-by-side HTML/Markdown with n, n_valid, parse failures and a CI bar chart."""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
try:  # tests/eval may or may not be a package
    from ._runner_fakes import RuleModel, ToyMCQ
except ImportError:
    from _runner_fakes import RuleModel, ToyMCQ  # noqa: E402

from secfoundry.core.errors import InputError  # noqa: E402
from secfoundry.eval.report import write_report  # noqa: E402
from secfoundry.eval.runner import RunConfig, run_eval  # noqa: E402


@pytest.fixture()
def two_runs(tmp_path):
    dirs = []
    for name, kw in (("base", dict(instruct=False)), ("trials", dict(instruct=False, trials=2, temperature=0.3))):
        out = tmp_path / name
        run_eval(RunConfig(model="rule:test", benchmarks=["toy-mcq"], out=out, mode="logprob", limit=8, **kw),
                 model=RuleModel(), tasks={"toy-mcq": ToyMCQ()})
        dirs.append(out)
    # A lower-is-better benchmark (like CTIBench-VSP MAD) gets its own chart panel.
    res = json.loads((dirs[0] / "results.json").read_text())
    res["toy-vsp"] = {"score": 1.9, "headline": "mad", "higher_is_better": False, "n": 7, "n_valid": 6,
                      "parse_failures": 1, "ci95": [1.5, 2.3], "mad": 1.9}
    res["toy-mcq"]["permute"] = {"variant_scores": {"original": 50.0, "rot1": 25.0}, "consistency": 12.5}
    (dirs[0] / "results.json").write_text(json.dumps(res))
    return dirs


def test_html_and_markdown(two_runs, tmp_path):
    written = write_report(two_runs, tmp_path / "rep" / "report.html")
    html_path, md_path, png_path = written
    assert html_path.suffix == ".html" and md_path.suffix == ".md" and png_path.suffix == ".png"
    html = html_path.read_text()
    m = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert m and base64.b64decode(m.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    assert "n=8, valid=8, parse fail=0" in html and "n=7, valid=6, parse fail=1" in html
    assert "rule:test faith/logprob/5-shot" in html and "2×T=0.3" in html
    md = md_path.read_text()
    assert "| toy-mcq | accuracy ↑ |" in md and "| toy-vsp | mad ↓ |" in md
    assert "(std, 2 trials)" in md and "[1.5, 2.3]" in md
    assert "![scores](report.png)" in md
    assert "lenient_accuracy" in md  # all named metrics are listed
    assert "| permute: variant_scores.rot1 | 25 | – |" in md and "| permute: consistency | 12.5 | – |" in md


def test_md_out_and_errors(two_runs, tmp_path):
    written = write_report(two_runs[:1], tmp_path / "r.md")
    assert {p.suffix for p in written} == {".md", ".html", ".png"}
    with pytest.raises(InputError, match="results.json"):
        write_report([tmp_path / "nope"], tmp_path / "x.html")


def test_cli_report(two_runs, tmp_path):
    from secfoundry.cli import app

    r = CliRunner().invoke(app, ["eval", "report", str(two_runs[0]), str(two_runs[1]), "--out",
                                 str(tmp_path / "cli.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cli.html").exists() and (tmp_path / "cli.md").exists()
    r = CliRunner().invoke(app, ["eval", "report", str(tmp_path / "missing"), "--out", str(tmp_path / "y.html")])
    assert r.exit_code == 2


BENCH12 = [("ctibench-mcq", "accuracy", True), ("ctibench-rcm", "accuracy", True),
           ("ctibench-rcm-2021", "accuracy", True), ("ctibench-vsp", "mad", False),
           ("ctibench-ate", "micro_f1", True), ("ctibench-taa", "correct", True), ("cybermetric-500", "accuracy", True),
           ("secbench-mcq-eng", "accuracy", True), ("secbench-mcq-eng-reasoning", "accuracy", True),
           ("secbench-saq", "judge_score", True), ("seceval", "accuracy", True), ("mmlu", "accuracy", True)]
MODELS = ["hf:fdtn-ai/Foundation-Sec-8B", "hf:meta-llama/Llama-3.1-8B", "smollm2-135m-instruct"]


def _fake_run(out: Path, model: str, k: int) -> Path:
    out.mkdir(parents=True)
    res = {}
    for i, (b, head, hib) in enumerate(BENCH12):
        if hib:
            s = round(30 + 50 * ((i * 7 + k * 13) % 10) / 10 + k * 3.3, 2)
            r = {"score": s, "ci95": [round(s - 4.1, 2), round(s + 3.9, 2)], head: s}
        else:
            s = round(1.2 + 0.4 * k, 3)
            r = {"score": s, "ci95": [s - 0.15, s + 0.17], "mad": s}
        r.update(headline=head, higher_is_better=hib, n=100 + i, n_valid=98 + i - k, parse_failures=2 + k)
        if b == "secbench-saq":
            r["judge"] = "smollm2-135m-instruct" if k == 2 else "openai:http://judge:8000/v1#gpt-4o-mini"
            r["judge_low_trust"] = k == 2
        res[b] = r
    (out / "results.json").write_text(json.dumps(res))
    (out / "config.json").write_text(json.dumps({"model": {"spec": model}, "instruct": k != 1,
                                                 "protocol": {"name": "faith", "mode": "generate", "trials": 1,
                                                              "temperature": 0.0},
                                                 "run": {"limit": None}, "started": "2026-12-03T15:00:00Z"}))
    return out


def test_three_models_twelve_benchmarks(tmp_path):
    """The readability case of issue #16: 3 models x 12 benchmarks of three metric families."""
    dirs = [_fake_run(tmp_path / f"run{k}", m, k) for k, m in enumerate(MODELS)]
    html_path, md_path, png_path = write_report(dirs, tmp_path / "rep" / "report.html")
    import matplotlib.image as mpimg

    img = mpimg.imread(png_path)
    h, w = img.shape[:2]
    assert 1000 <= w <= 1300 and h < 2400  # one readable column of panels
    html = html_path.read_text()
    for b, _h, _hib in BENCH12:
        assert f"<td class=\"b\">{b}" in html
    for fam in ("Accuracy-type scores", "F1 (%)", "lower is better"):
        assert fam in html
    assert html.count("low-trust judge") == 1 and "<td>smollm2-135m-instruct</td>" in html
    assert html.count("class=\"num best\"") == len(BENCH12)  # one best cell per row
    assert "<script" not in html
    md = md_path.read_text()
    assert "| ctibench-vsp | mad ↓ |" in md and "| secbench-saq †" in md and "† graded by an LLM judge" in md
    assert md.count("**") == 2 * len(BENCH12) + 2  # one bold best per row, plus the legend line
    if os.environ.get("SECFOUNDRY_KEEP_REPORT"):  # look at it: SECFOUNDRY_KEEP_REPORT=/tmp/rep pytest ...
        keep = Path(os.environ["SECFOUNDRY_KEEP_REPORT"])
        keep.mkdir(parents=True, exist_ok=True)
        for p in (html_path, md_path, png_path):
            (keep / p.name).write_bytes(p.read_bytes())


def test_untrusted_names_are_escaped(tmp_path):
    d = _fake_run(tmp_path / "evil", "<img src=x onerror=alert(1)>", 0)
    html = write_report([d], tmp_path / "r.html")[0].read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
