"""``secfoundry eval contamination``: per benchmark, the items a corpus holds and where."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from secfoundry.cli import app
from secfoundry.corpus.prepare.contamination_check import check_corpus

from .test_contamination import MCQ_OPTS, MCQ_Q, vuldb
from .test_decontaminate_step import bench_copy


def write_corpus(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    rows = [{"id": "blog", "text": "Weekly notes on router firmware.\n\n" + MCQ_Q + "\n"
             + "\n".join(f"{l}. {o}" for l, o in zip("ABCD", MCQ_OPTS)) + "\n\nThanks for reading.\n"},
            {"id": "cve-own", "text": "# CVE-2024-3905\n\n" + vuldb(40, product="AC500", fn="fromAddressNat", arg="page")},
            {"id": "copy", "text": "Mirror of a description.\n\n" + vuldb(4).lower() + "\n"}]
    (d / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (d / "about.md").write_text("# CVE-2024-1001: advisory\n\nVendor text without the benchmark wording.\n")
    return d


def test_check_corpus_finds_items_with_where_and_why(tmp_path):
    rep = check_corpus(write_corpus(tmp_path), ["ctibench-rcm", "ctibench-mcq"], data_dir=str(bench_copy(tmp_path)))
    assert rep.documents == 4
    assert rep.benchmarks["ctibench-mcq"] == {"items": 1, "found": 1, "share": 1.0, "documents": 1}
    assert rep.benchmarks["ctibench-rcm"]["found"] == 2  # item 4 copied (n-grams), item 1 by its CVE id
    by_doc = {(f.doc, f.item): f for f in rep.findings}
    assert ("jsonl:blog", "ctibench-mcq:0") in by_doc and by_doc[("jsonl:blog", "ctibench-mcq:0")].spans
    assert by_doc[("jsonl:copy", "ctibench-rcm:4")].why.startswith("share 1.00")
    assert any(f.item == "ctibench-rcm:1" and f.why == "document about CVE-2024-1001" for f in rep.findings)
    assert not any(f.doc == "jsonl:cve-own" for f in rep.findings)


def test_cli_contamination(tmp_path):
    corpus = write_corpus(tmp_path)
    out = tmp_path / "rep" / "contamination.md"
    r = CliRunner().invoke(app, ["eval", "contamination", "--corpus", str(corpus), "-b", "ctibench-mcq",
                                 "--data-dir", str(bench_copy(tmp_path)), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "| ctibench-mcq | 1 | 1 | 100.00% | 1 |" in r.output
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["findings"][0]["item"] == "ctibench-mcq:0" and out.exists()
    bad = CliRunner().invoke(app, ["eval", "contamination", "--corpus", str(tmp_path / "nope*"), "-b", "ctibench-mcq",
                                   "--data-dir", str(bench_copy(tmp_path / "b2"))])
    assert bad.exit_code == 2 and "no corpus files" in bad.output
