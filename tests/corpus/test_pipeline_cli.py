"""`secfoundry corpus collect | run | status | steps | crawl` through the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from secfoundry.cli import app

from .collect.sites import SEC, Site, html, page


def test_collect_status_steps(ray_local, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"doc {i} exploit"}) + "\n" for i in range(30)))
    runner = CliRunner()
    r = runner.invoke(app, ["corpus", "collect", "--jsonl", str(src), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["corpus", "status", str(tmp_path / "out")])
    assert r.exit_code == 0 and "00-collect" in r.output and "complete" in r.output
    r = runner.invoke(app, ["corpus", "steps"])
    assert r.exit_code == 0 and "length_filter" in r.output
    r = runner.invoke(app, ["corpus", "run", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2


def test_run_writes_summary_and_report(ray_local, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"CVE-2024-{i:04d} exploit in the firewall"}) + "\n" for i in range(20)))
    rec = tmp_path / "r.yaml"
    rec.write_text(f"inputs: [{{kind: jsonl, paths: ['{src}']}}]\n"
                   "stages: [{name: process, steps: [{step: sample, fraction: 0.5}]}]\n")
    r = CliRunner().invoke(app, ["corpus", "run", str(rec), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "sample:out" in r.output and (tmp_path / "o" / "summary.json").exists()
    assert (tmp_path / "o" / "report.html").exists()


def test_run_until_unknown_stage(ray_local, tmp_path):
    rec = tmp_path / "r.yaml"
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "x"}) + "\n")
    rec.write_text(f"inputs: [{{kind: jsonl, paths: ['{src}']}}]\nstages: [{{name: process, steps: [sample]}}]\n")
    r = CliRunner().invoke(app, ["corpus", "run", str(rec), "--out", str(tmp_path / "o"), "--until", "nope"])
    assert r.exit_code == 2 and "no such stage" in r.output


def test_crawl_command(tmp_path):
    site = Site({"/": html(page("Home", SEC, ["/a"])), "/a": html(page("A", SEC, [])),
                 "/robots.txt": (404, {}, b"")})
    with site:
        r = CliRunner().invoke(app, ["corpus", "crawl", "--seed", site.base + "/", "--out", str(tmp_path / "c.warc.gz"),
                                     "--delay", "0", "--relevance", "all"])
    assert r.exit_code == 0, r.output
    assert sorted(p for p in site.paths() if p != "/robots.txt") == ["/", "/a"]
    assert (tmp_path / "c.warc.gz").stat().st_size > 0
