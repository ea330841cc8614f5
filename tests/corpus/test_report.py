"""The corpus report: run directories written with the engine's own storage helpers (complete,
partial, packed and unpacked), the CLI, and one tiny real engine run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from secfoundry.corpus.engine.runner import plan_phases
from secfoundry.corpus.engine.recipe import Recipe
from secfoundry.corpus.step import Dropped
from secfoundry.corpus.engine.storage import PhaseStore
from secfoundry.corpus.engine.workers import reason_key
from secfoundry.corpus.prepare.shards import Manifest, SourceShards
from secfoundry.corpus.report import write_report
from secfoundry.corpus.report_data import collect_run, source_table
from secfoundry.core.documents import Document

RECIPE = {
    "name": "synthetic",
    "inputs": [{"kind": "jsonl", "paths": ["in/*.jsonl"]}],
    "stages": [
        {"name": "process", "steps": [{"step": "length_filter", "min_chars": 20}, {"step": "sample", "fraction": 0.9}]},
        {"name": "prepare", "steps": [{"step": "exact_dedup"}, {"step": "mix", "weights": {"attack": 2.0}},
                                      {"step": "pack", "tokenizer": "x", "seq_len": 8}]},
    ],
}


def _doc(i: int, source: str, text: str, lang: str | None = "en") -> Document:
    meta = {"lang": lang} if lang else {}
    return Document(id=f"{source}:{i}", text=text, source=source, url=f"https://ex.org/{source}/{i}",
                    license="CC0", metadata=meta)


def _commit(store: PhaseStore, key: str, kept: list[Document], dropped: list[Dropped], docs_in: int,
            chars_in: int | None = None, steps: dict | None = None) -> None:
    files = [store.write_data(f"{key}.parquet", kept)]
    excl = [store.write_excluded(f"{key}.parquet", dropped)] if dropped else []
    counts: dict[str, int] = {}
    for d in dropped:
        rk = reason_key(d.step, d.reason)
        counts[rk] = counts.get(rk, 0) + 1
    by_source: dict[str, int] = {}
    for d in kept:
        by_source[d.source] = by_source.get(d.source, 0) + 1
    store.write_marker(key, files, excl, {
        "docs_in": docs_in, "docs_out": len(kept), "chars_in": chars_in if chars_in is not None else sum(len(d.text) for d in kept),
        "chars_out": sum(len(d.text) for d in kept), "dropped": counts, "by_source": by_source,
        "steps": steps or {}, "seconds": 0.5})


def build_run(root: Path, *, partial: bool = False, packed: bool = True) -> dict:
    """A run directory as the engine lays it out, phase by phase; returns the expected figures."""
    root.mkdir(parents=True)
    recipe = Recipe.from_dict(RECIPE)
    (root / "recipe.yaml").write_text(recipe.to_yaml())
    names = [p.dirname for p in plan_phases(recipe)]
    assert names == ["00-collect", "01-process", "02-prepare-1-exact_dedup", "02-prepare-2-mix", "02-prepare-3-pack"]
    # collect: two partitions; cve (20 docs), attack (10), general (10, 2 German)
    cve = [_doc(i, "cve", f"CVE-2024-{1000 + i} buffer overflow in the parser allows remote code execution.")
           for i in range(20)]
    attack = [_doc(i, "attack", f"T{1000 + i} Technique {i}: adversaries may abuse scheduled tasks for persistence.")
              for i in range(10)]
    general = [_doc(i, "general:wikitext", ("Die Stadt liegt am Fluss. " if i < 2 else "The river runs through town. ") * 5,
                    "de" if i < 2 else "en") for i in range(10)]
    short = [_doc(100 + i, "cve", "CVE-2024-1", None) for i in range(3)]  # dropped by length_filter
    every = cve + attack + general + short
    c = PhaseStore(root / "00-collect")
    c.save_plan({"keys": ["in0", "in1"], "fingerprint": "x"})
    _commit(c, "in0", cve + short, [], len(cve) + len(short))
    _commit(c, "in1", attack + general, [], len(attack) + len(general))
    c.mark_complete({"seconds": 2.0})
    # process: drops the 3 short ones (length) and the 2 German general ones (langid)
    p = PhaseStore(root / "01-process")
    p.save_plan({"keys": ["in0", "in1"], "fingerprint": "y",
                 "steps": [{"step": "length_filter"}, {"step": "sample"}]})
    _commit(p, "in0", cve, [Dropped(d, "length_filter", "length:short") for d in short], len(cve) + len(short),
            steps={"length_filter": {"in": 23, "out": 20}, "sample": {"in": 20, "out": 20}})
    if partial:  # second partition not committed yet, phase not complete, the rest never started
        return {"every": every}
    g_kept = general[2:]
    _commit(p, "in1", attack + g_kept, [Dropped(d, "langid", "lang:de:0.99") for d in general[:2]], 20,
            steps={"length_filter": {"in": 20, "out": 20}, "langid": {"in": 20, "out": 18}})
    p.mark_complete({"seconds": 3.0})
    # exact dedup: 4 CVE copies of one text -> here, drop cve:1..3 as duplicates of cve:0
    e = PhaseStore(root / "02-prepare-1-exact_dedup")
    e.save_plan({"keys": ["in0", "in1"], "fingerprint": "z"})
    dups = cve[1:4]
    _commit(e, "in0", [d for d in cve if d not in dups],
            [Dropped(d, "exact_dedup", "dedup:exact") for d in dups], 20)
    _commit(e, "in1", attack + g_kept, [], 18)
    e.mark_complete({"seconds": 1.0})
    # mix: attack upsampled x2 (copies "<id>#r1")
    m = PhaseStore(root / "02-prepare-2-mix")
    m.save_plan({"keys": ["in0", "in1"], "fingerprint": "w"})
    copies = [Document(id=f"{d.id}#r1", text=d.text, source=d.source, metadata=dict(d.metadata)) for d in attack]
    _commit(m, "in0", [d for d in cve if d not in dups], [], 17)
    _commit(m, "in1", attack + copies + g_kept, [], 18)
    m.mark_complete({"seconds": 1.0})
    k = PhaseStore(root / "02-prepare-3-pack")
    k.save_plan({"keys": ["in0", "in1"], "fingerprint": "v"})
    _commit(k, "in0", [d for d in cve if d not in dups], [], 17)
    _commit(k, "in1", attack + copies + g_kept, [], 28)
    k.mark_complete({"seconds": 4.0})
    if packed:
        shards = root / "shards"
        shards.mkdir()
        man = Manifest(tokenizer="smollm2-135m-instruct", seq_len=8, dtype="uint16", eos_id=0, vocab_size=49152)
        man.splits = {"train": {"cve": SourceShards(n_seqs=40, n_tokens=320, n_docs=17, licenses=["CC0"]),
                                "attack": SourceShards(n_seqs=50, n_tokens=400, n_docs=20, dropped_tail_tokens=3),
                                "general:wikitext": SourceShards(n_seqs=30, n_tokens=240, n_docs=8)},
                      "test": {"attack": SourceShards(n_seqs=1, n_tokens=8, n_docs=1)}}
        man.save(shards)
        state = k.state_dir
        state.mkdir(parents=True)
        (state / "pack.json").write_text(json.dumps({"out": str(shards), "tokens": man.tokens("train")}))
    return {"every": every}


def test_complete_packed_run(tmp_path):
    run = tmp_path / "run"
    build_run(run)
    rep = collect_run(run)
    assert [p.status for p in rep.phases] == ["done"] * 5
    collect, process = rep.phases[0], rep.phases[1]
    assert (collect.docs_in, collect.docs_out) == (43, 43)
    assert (process.docs_in, process.docs_out) == (43, 38)
    assert process.bytes_in == collect.bytes_out and process.bytes_out < process.bytes_in
    assert process.step_io["length_filter"] == {"in": 43, "out": 40}
    assert rep.collected_by_source == {"cve": 23, "attack": 10, "general:wikitext": 10}
    assert rep.lang_from == "langid" and rep.langs["en"] > rep.langs.get("de", 0)
    assert rep.tokens.measured and rep.tokens.sources["attack"]["test"] == 8
    rows = {r["source"]: r for r in source_table(rep)}
    assert rows["cve"]["keep_rate"] == pytest.approx(17 / 23)  # 3 short + 3 exact duplicates dropped
    assert rows["attack"]["keep_rate"] == 1.0 and rows["attack"]["final_docs"] == 20  # copies not counted as kept
    assert rows["attack"]["tokens"] == 408
    assert rows["general:wikitext"]["tokens"] == 240  # the packer replaces '/' only
    assert rows["cve"]["dropped"] == {"length:short": 3, "dedup:exact": 3}

    html_path = write_report(run)
    assert html_path == run / "report.html"
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") >= 4  # funnel, keep rates, tokens, languages, lengths
    assert "length:short" in page and "dedup:exact" in page
    assert "CVE-2024-1001 buffer overflow" in page  # an example of the exact-dedup drops, with its full reason
    assert "https://ex.org/cve/1" in page
    assert "lang:de:0.99" in page and "| lang:de | 2 |" in (run / "report.md").read_text()  # grouped; example keeps the score
    assert "<td>pending</td>" not in page
    md = (run / "report.md").read_text()
    assert "| cve | 23 |" in md and "73.9%" in md
    assert "smollm2-135m-instruct" in md and "≈" not in md.split("## Tokens per source")[1].split("##")[0]
    assert (run / "report_assets" / "funnel.png").read_bytes()[:4] == b"\x89PNG"
    # the stage table: prepare's token count out is the manifest's own (971 tokens incl. the dropped tail)
    stage_rows = [l for l in md.splitlines() if l.startswith("| prepare |")]
    assert stage_rows and "| 971 |" in stage_rows[0]


def test_partial_run_shows_pending(tmp_path):
    run = tmp_path / "run"
    build_run(run, partial=True)
    rep = collect_run(run)
    assert [p.status for p in rep.phases] == ["done", "partial", "pending", "pending", "pending"]
    assert rep.phases[1].partitions_done == 1 and rep.phases[1].docs_out == 20
    assert not rep.tokens.measured  # no shards yet: estimated, and said so
    write_report(run)
    md = (run / "report.md").read_text()
    assert re.search(r"\| 02-prepare-3-pack \| pack \| pending \|", md)
    assert "| process | partial | 1/1 |" in md
    assert "ESTIMATED as characters / 4" in md
    assert "1/5 phases complete (01-process in progress)" in md
    assert "<td>pending</td>" in (run / "report.html").read_text()


def test_unpacked_run_estimates_tokens_and_cache_is_reused(tmp_path):
    run = tmp_path / "run"
    build_run(run, packed=False)
    write_report(run)
    cached = sorted((run / ".report_cache").rglob("*.json"))
    assert cached
    mtimes = [p.stat().st_mtime_ns for p in cached]
    rep = collect_run(run)
    assert [p.stat().st_mtime_ns for p in cached] == mtimes  # profiles read back, not recomputed
    assert not rep.tokens.measured
    final = rep.phases[-1]
    assert rep.tokens.sources["cve"]["train"] == round(final.out.sources["cve"]["chars"] / 4)
    # large runs: profile one partition per phase, extrapolate sizes; counts stay exact
    small = collect_run(run, max_partitions=1)
    proc = small.phases[1]
    assert proc.sampled == (1, 2) and proc.out.docs == proc.docs_out == 38
    assert proc.dropped == rep.phases[1].dropped
    write_report(run, max_partitions=1)
    assert "extrapolated from 1 of 2 partitions" in (run / "report.md").read_text()


def test_cli_report(tmp_path):
    from secfoundry.cli.corpus import app

    run = tmp_path / "run"
    build_run(run, partial=True)
    out = tmp_path / "elsewhere" / "r.html"
    res = CliRunner().invoke(app, ["report", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists() and (out.parent / "r.md").exists()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "nope" in res.output


def test_report_of_a_real_engine_run(ray_local, tmp_path):
    """A tiny real run (jsonl -> length filter + langid -> exact dedup): the report reads the
    engine's own outputs, whatever their details."""
    from secfoundry.corpus.pipeline import run_recipe

    from .conftest import worker_env

    inp = tmp_path / "in"
    inp.mkdir()
    lines = []
    for i in range(60):
        text = f"Advisory {i}: CVE-2024-{2000 + i} lets a remote attacker execute code via a crafted request header."
        if i % 10 == 0:
            text = "short"
        if i % 7 == 0:
            text = "The same boilerplate advisory text appears in several places across this feed of items."
        lines.append(json.dumps({"text": text, "url": f"https://ex.org/{i}"}))
    (inp / "a.jsonl").write_text("\n".join(lines) + "\n")
    recipe = Recipe.from_dict({
        "name": "tiny", "inputs": [{"kind": "jsonl", "paths": [str(inp / "a.jsonl")], "source": "feed"}],
        "stages": [{"name": "process", "steps": [{"step": "length_filter", "min_chars": 20}, {"step": "langid"}]},
                   {"name": "prepare", "steps": [{"step": "exact_dedup"}]}],
        "engine": {"num_cpus": 2, "partition_rows": 30, "runtime_env": worker_env()}})
    out = tmp_path / "run"
    summary = run_recipe(recipe, out, progress=False)
    write_report(out)
    rep = collect_run(out)
    assert [p.docs_out for p in rep.phases] == [p.docs_out for p in summary.phases]
    reasons = {k.split("|")[1] for p in rep.phases for k in p.excluded.counts}
    assert "length:short" in reasons and any(r.startswith("dedup") for r in reasons)
    assert rep.lang_from == "langid" and "en" in rep.langs
    page = (out / "report.html").read_text()
    assert "length:short" in page and "feed" in page
