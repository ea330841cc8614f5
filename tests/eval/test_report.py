"""`eval report`: side-by-side HTML/Markdown with n, n_valid, parse failures and a CI bar chart."""

from __future__ import annotations

import base64
import json
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
