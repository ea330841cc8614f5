"""`secfoundry eval score` reproduces the CTIBench paper from the authors' published responses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secfoundry.cli import app
from secfoundry.eval.external import read_predictions, score_predictions

# (benchmark, responses file, column, score as printed in the paper, correct+plausible for TAA)
PAPER = [
    ("ctibench-mcq", "cti-mcq-responses.tsv", "ChatGPT-4", 71.0, None),
    ("ctibench-rcm", "cti-rcm-responses.tsv", "ChatGPT-4", 72.0, None),
    ("ctibench-rcm-2021", "cti-rcm-2021-responses.tsv", "ChatGPT-4", 68.0, None),
    ("ctibench-vsp", "cti-vsp-responses.tsv", "ChatGPT-4", 1.31, None),
    ("ctibench-taa", "cti-taa-responses.tsv", "ChatGPT-4", 52.0, 86.0),
    ("ctibench-mcq", "cti-mcq-responses.tsv", "LLAMA3-8B", 61.32, None),
    ("ctibench-rcm", "cti-rcm-responses.tsv", "LLAMA3-8B", 44.7, None),
    ("ctibench-rcm-2021", "cti-rcm-2021-responses.tsv", "LLAMA3-8B", 48.3, None),
    ("ctibench-vsp", "cti-vsp-responses.tsv", "LLAMA3-8B", 1.908, None),
    ("ctibench-taa", "cti-taa-responses.tsv", "LLAMA3-8B", 28.0, 36.0),
]


@pytest.mark.parametrize("bench,fname,col,score,plausible", PAPER, ids=[f"{b}-{c}" for b, _, c, _, _ in PAPER])
def test_paper_numbers_exactly(bench_dir: Path, bench, fname, col, score, plausible):
    cells = read_predictions(bench_dir / "ctibench" / "responses" / fname, col)
    out = score_predictions(bench, cells, data_dir=bench_dir)
    assert out["score"] == score  # exact, as printed
    assert out["n"] == len(cells) and out["n_valid"] <= out["n"]
    if plausible is not None:
        assert out["score_plausible"] == plausible


def test_cli_json(bench_dir: Path):
    f = bench_dir / "ctibench" / "responses" / "cti-vsp-responses.tsv"
    res = CliRunner().invoke(app, ["eval", "score", "--benchmark", "ctibench-vsp", "--predictions", str(f),
                                   "--column", "LLAMA3-8B", "--protocol", "official", "--data-dir", str(bench_dir),
                                   "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout.strip().splitlines()[-1])
    assert obj["score"] == 1.908 and obj["n"] == 1000 and obj["n_valid"] == 1000
    assert obj["benchmark"] == "ctibench-vsp" and obj["higher_is_better"] is False


def test_other_published_columns_with_bad_cells(bench_dir: Path):
    """Gemini's "Error"/"X" cells and LLAMA3-70B's empty cell: invalid, never a crash."""
    resp = bench_dir / "ctibench" / "responses"
    rcm = score_predictions("ctibench-rcm", read_predictions(resp / "cti-rcm-responses.tsv", "Gemini-1.5"),
                            data_dir=bench_dir)
    assert (rcm["n"], rcm["n_valid"], rcm["parse_failures"]) == (1000, 923, 77)
    assert rcm["score"] == 66.63  # 615 / 923, over parseable answers
    r21 = score_predictions("ctibench-rcm-2021", read_predictions(resp / "cti-rcm-2021-responses.tsv", "LLAMA3-70B"),
                            data_dir=bench_dir)
    assert r21["n_valid"] == 999
    # "X" is the authors' refusal marker: a valid (counted) but wrong answer.
    mcq = score_predictions("ctibench-mcq", read_predictions(resp / "cti-mcq-responses.tsv", "Gemini-1.5"),
                            data_dir=bench_dir)
    assert mcq["n_valid"] == 2500 and mcq["score"] == 65.44


def test_garbage_predictions_file(bench_dir: Path, tmp_path: Path):
    rows = ["GT\tmodel"] + ["A\t" + ("" if i % 3 == 0 else "not an answer" if i % 3 == 1 else "C") for i in range(2500)]
    f = tmp_path / "preds.tsv"
    f.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = score_predictions("ctibench-mcq", read_predictions(f, "model"), data_dir=bench_dir)
    assert out["n"] == 2500 and out["n_valid"] == 833 and out["parse_failures"] == 1667
    # wrong number of rows: a clear error naming the file
    f2 = tmp_path / "short.tsv"
    f2.write_text("model\nA\nB\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["eval", "score", "-b", "ctibench-mcq", "-p", str(f2), "-c", "model",
                                   "--data-dir", str(bench_dir), "--json"])
    assert res.exit_code == 2 and "short.tsv" in res.output and "2500" in res.output
    res = CliRunner().invoke(app, ["eval", "score", "-b", "ctibench-mcq", "-p", str(f2), "-c", "nope",
                                   "--data-dir", str(bench_dir), "--json"])
    assert res.exit_code == 2 and "nope" in res.output


def test_raw_outputs_and_faith(bench_dir: Path, tmp_path: Path):
    """--raw extracts answers from full outputs; faith RCM drops duplicate descriptions."""
    resp = bench_dir / "ctibench" / "responses"
    cells = read_predictions(resp / "cti-rcm-responses.tsv", "ChatGPT-4")
    raw = [f"The weakness is described in the text.\n{c}" for c in cells]
    assert score_predictions("ctibench-rcm", raw, raw=True, data_dir=bench_dir)["score"] == 72.0
    faith = score_predictions("ctibench-rcm", raw, raw=True, protocol="faith", data_dir=bench_dir)
    assert faith["n"] == 988  # 1000 minus 12 repeated descriptions
