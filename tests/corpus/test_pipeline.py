"""The corpus engine: recipes, phases, exclusions, resume after a kill (no document lost or
duplicated), rebuild on recipe change, per-document error isolation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from secfoundry.corpus.engine.recipe import Recipe
from secfoundry.corpus.pipeline import load_documents, load_excluded, run_recipe, run_status
from secfoundry.core.errors import InputError

from .conftest import worker_env

REPO = Path(__file__).resolve().parents[2]


def write_inputs(root: Path, files: int = 12, per_file: int = 20) -> str:
    """JSONL files with a nested text field, a few short docs, cross-file duplicate texts and a bad line."""
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        lines = []
        for i in range(per_file):
            n = f * per_file + i
            text = f"Document {n}: exploit analysis of CVE-2024-{1000 + n} with enough text to pass."
            if n % 17 == 0:
                text = "tiny"
            if n % 23 == 0:
                text = "A shared boilerplate paragraph that appears in several files verbatim."
            lines.append(json.dumps({"doc": {"body": text}, "uid": f"u{n}", "link": f"https://ex.org/{n}"}))
        if f == 3:
            lines.insert(5, "{not json")
        (root / f"part-{f:03d}.jsonl").write_text("\n".join(lines) + "\n")
    return str(root / "part-*.jsonl")


def recipe_dict(glob: str, slow: float = 0.0) -> dict:
    process = [{"step": "length_filter", "min_chars": 10}]
    if slow:
        process.append({"step": "pipeline_steps:Slow", "seconds": slow})
    return {
        "name": "test",
        "inputs": [{"kind": "jsonl", "paths": [glob], "text_field": "doc.body", "id_field": "uid",
                    "url_field": "link", "source": "testsrc", "license": "CC0-1.0"}],
        "stages": [
            {"name": "process", "steps": process},
            {"name": "prepare", "steps": [{"step": "pipeline_steps:DupText"}, {"step": "sample", "fraction": 0.9}]},
        ],
        "engine": {"num_cpus": 2, "partition_rows": 50, "batch_size": 8, "runtime_env": worker_env()},
    }


def ids(out: Path, phase: str | None = None) -> list[str]:
    return [d.id for d in load_documents(out, phase)]


def test_run_phases_exclusions_and_summary(ray_local, tmp_path):
    glob = write_inputs(tmp_path / "in")
    rec = Recipe.from_dict(recipe_dict(glob))
    out = tmp_path / "out"
    summary = run_recipe(rec, out, progress=False)
    names = [p.phase for p in summary.phases]
    # the prepare stage is split before its global step: DupText + sample fused in one phase
    assert names == ["00-collect", "01-process", "02-prepare"]
    collect, process, prepare = summary.phases
    assert collect.docs_out == 240 and collect.quarantined == 1  # the bad JSON line
    n_short = sum(1 for n in range(240) if n % 17 == 0 and n % 23 != 0)
    n_shared = sum(1 for n in range(240) if n % 23 == 0)
    assert process.dropped == {"length:short": n_short}
    assert prepare.dropped["dup:text"] == n_shared - 1  # copies of the shared paragraph, one kept
    assert prepare.docs_out == prepare.docs_in - sum(prepare.dropped.values())
    docs = load_documents(out)
    assert len(docs) == prepare.docs_out == json.loads((out / "summary.json").read_text())["documents_out"]
    assert len({d.id for d in docs}) == len(docs)
    d = docs[0]
    assert d.source == "testsrc" and d.license == "CC0-1.0" and d.url.startswith("https://ex.org/")
    assert d.metadata["collect"] == "jsonl"
    # required columns, metadata as a JSON string
    f = next((out / "02-prepare" / "data").glob("*.parquet"))
    cols = pq.read_schema(f).names
    assert {"id", "text", "source", "url", "license", "metadata"} <= set(cols)
    # every drop is auditable, with its step and reason
    ex = load_excluded(out, "process")
    assert ex.num_rows == n_short and set(ex.column("reason").to_pylist()) == {"length:short"}
    ex2 = load_excluded(out, "prepare")
    assert set(ex2.column("step").to_pylist()) == {"dup_text", "sample"}
    # markers and completion
    for p in ("00-collect", "01-process", "02-prepare"):
        assert (out / p / "_SUCCESS").exists()
    st = run_status(out)
    assert all(r["complete"] and r["done"] == r["planned"] for r in st)
    # a second run skips everything and reports the same totals
    again = run_recipe(rec, out, progress=False)
    assert [p.skipped for p in again.phases] == [p.partitions for p in again.phases]
    assert again.phases[-1].docs_out == prepare.docs_out


def test_recipe_change_rebuilds_only_downstream(ray_local, tmp_path):
    glob = write_inputs(tmp_path / "in", files=3)
    out = tmp_path / "out"
    d = recipe_dict(glob)
    run_recipe(Recipe.from_dict(d), out, progress=False)
    before = (out / "00-collect" / "_SUCCESS").stat().st_mtime_ns
    d["stages"][1]["steps"][1]["fraction"] = 0.5
    s = run_recipe(Recipe.from_dict(d), out, progress=False)
    assert (out / "00-collect" / "_SUCCESS").stat().st_mtime_ns == before
    assert s.phases[1].skipped == s.phases[1].partitions  # process unchanged
    assert s.phases[2].skipped == 0  # prepare rebuilt
    assert 0.3 < s.phases[2].docs_out / s.phases[2].docs_in < 0.7


def test_bad_document_is_isolated(ray_local, tmp_path):
    glob = write_inputs(tmp_path / "in", files=2)
    d = recipe_dict(glob)
    d["stages"] = [{"name": "process", "steps": [{"step": "pipeline_steps:Boom", "bad": "CVE-2024-1005 "}]}]
    out = tmp_path / "out"
    s = run_recipe(Recipe.from_dict(d), out, progress=False)
    assert s.phases[1].dropped == {"boom:error:ValueError": 1}
    ex = load_excluded(out, "process")
    assert ex.column("id").to_pylist() == ["testsrc:u5"]
    assert ex.column("reason").to_pylist()[0].startswith("error:ValueError")
    assert s.phases[1].docs_out == s.phases[1].docs_in - 1


def test_resume_after_sigkill_loses_and_duplicates_nothing(ray_local, tmp_path):
    glob = write_inputs(tmp_path / "in", files=12, per_file=10)
    d = recipe_dict(glob, slow=0.15)
    d["engine"]["partition_rows"] = 10
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    ref = run_recipe(Recipe.from_dict(d), ref_out, progress=False)
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(d))

    code = ("import sys; from secfoundry.corpus.pipeline import run_recipe; "
            "run_recipe(sys.argv[1], sys.argv[2], ray_address=sys.argv[3], progress=False)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(recipe_file), str(out), ray_local], env=env,
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    markers = out / "01-process" / "markers"
    deadline = time.time() + 90
    try:
        while time.time() < deadline:
            n = len(list(markers.glob("*.json"))) if markers.is_dir() else 0
            if n >= 3 or proc.poll() is not None:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)  # the driver dies mid-stage, with no chance to clean up
    finally:
        proc.wait(timeout=30)
    assert not (out / "01-process" / "_SUCCESS").exists()
    done_at_kill = len(list(markers.glob("*.json")))
    assert 3 <= done_at_kill < 12

    resumed = run_recipe(recipe_file, out, progress=False)
    assert resumed.phases[0].skipped == resumed.phases[0].partitions  # collect was complete
    assert resumed.phases[1].skipped >= 3  # committed partitions were not redone
    got, want = ids(out), ids(ref_out)
    assert len(got) == len(set(got)) and sorted(got) == sorted(want)
    for phase in ("00-collect", "01-process"):
        assert sorted(ids(out, phase)) == sorted(ids(ref_out, phase))
    assert sorted(load_excluded(out, "process").column("id").to_pylist()) == \
        sorted(load_excluded(ref_out, "process").column("id").to_pylist())
    assert resumed.phases[-1].docs_out == ref.phases[-1].docs_out
    assert not list(out.rglob("*.tmp"))


def test_recipe_errors_name_the_place(tmp_path):
    with pytest.raises(InputError, match="unknown recipe key"):
        Recipe.from_dict({"name": "x", "stagez": []})
    with pytest.raises(InputError, match=r"inputs\[0\]\.kind"):
        Recipe.from_dict({"inputs": [{"kind": "ftp"}]})
    with pytest.raises(InputError, match=r"inputs\[0\]"):
        Recipe.from_dict({"inputs": [{"kind": "jsonl", "pathz": []}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [{name: p, steps: [{step: no_such_step}]}]\n")
    from secfoundry.corpus.engine.runner import plan_phases

    with pytest.raises(InputError, match="unknown step 'no_such_step'"):
        plan_phases(Recipe.from_yaml(bad))
    from secfoundry.corpus.engine.registry import build_step

    with pytest.raises(InputError, match="unknown option"):
        build_step("length_filter", {"min_char": 3})


@pytest.mark.parametrize("name", ["quickstart", "foundation-sec"])
def test_shipped_recipes_parse(name):
    rec = Recipe.from_yaml(REPO / "configs" / "corpus" / f"{name}.yaml")
    assert rec.inputs and rec.stages
    Recipe.from_dict(yaml.safe_load(rec.to_yaml()))  # round-trips


def test_failed_input_is_recorded_then_retried(ray_local, tmp_path):
    good, late = tmp_path / "good.jsonl", tmp_path / "late.jsonl"
    good.write_text("".join(json.dumps({"text": f"good document {i}"}) + "\n" for i in range(5)))
    d = {"inputs": [{"kind": "jsonl", "paths": [str(good), str(late)], "source": "s"}],
         "stages": [{"name": "process", "steps": [{"step": "length_filter", "min_chars": 1}]}],
         "engine": {"num_cpus": 2, "runtime_env": worker_env()}}
    out = tmp_path / "out"
    s = run_recipe(Recipe.from_dict(d), out, progress=False)
    assert s.phases[0].docs_out == 5 and len(s.phases[0].input_errors) == 1  # the run still finished
    assert "FileNotFoundError" in next(iter(s.phases[0].input_errors.values()))
    late.write_text(json.dumps({"text": "arrived later"}) + "\n")
    s = run_recipe(Recipe.from_dict(d), out, progress=False)  # plain rerun: nothing to do
    assert s.phases[1].docs_out == 5
    s = run_recipe(Recipe.from_dict(d), out, progress=False, retry_failed=True)
    assert s.phases[0].input_errors == {} and s.phases[1].docs_out == 6
    assert sorted(x.text for x in load_documents(out))[0] == "arrived later"


def test_global_step_with_ray_data_fit(ray_local, tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps({"text": f"t{i}", "src": f"s{i % 3}", "k": f"{i:03d}"}) + "\n" for i in range(30)))
    d = {"inputs": [{"kind": "jsonl", "paths": [str(p)], "source_field": "src", "id_field": "k"}],
         "stages": [{"name": "prepare", "steps": [{"step": "length_filter"},
                                                  {"step": "pipeline_steps:SourceCap", "cap": 2},
                                                  {"step": "sample", "fraction": 1.0}]}],
         "engine": {"num_cpus": 2, "partition_rows": 12, "runtime_env": worker_env()}}
    out = tmp_path / "out"
    s = run_recipe(Recipe.from_dict(d), out, progress=False)
    assert [p.phase for p in s.phases] == ["00-collect", "01-prepare-1-length_filter",
                                           "01-prepare-2-pipeline_steps.SourceCap"]
    assert s.phases[1].partitions == 3  # partition_rows=12 -> 3 collect files, kept 1:1
    assert sorted(x.id for x in load_documents(out)) == ["s0:000", "s0:003", "s1:001", "s1:004", "s2:002", "s2:005"]
    assert json.loads((out / "01-prepare-2-pipeline_steps.SourceCap" / "_state" / "keep.json").read_text())["counts"] \
        == {"s0": 10, "s1": 10, "s2": 10}


def test_pass_through_phase_commits_its_input_files(ray_local, tmp_path):
    """A phase whose only step keeps every document links the input partition instead of
    re-encoding it, and still records full stats."""
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps({"text": f"text number {i}", "src": f"s{i % 2}"}) + "\n" for i in range(25)))
    d = {"inputs": [{"kind": "jsonl", "paths": [str(p)], "source_field": "src"}],
         "stages": [{"name": "prepare", "steps": [{"step": "length_filter"}, {"step": "pipeline_steps:CountOnly"}]}],
         "engine": {"num_cpus": 2, "partition_rows": 10, "runtime_env": worker_env()}}
    out = tmp_path / "out"
    s = run_recipe(Recipe.from_dict(d), out, progress=False)
    last = s.phases[-1]
    assert last.docs_in == last.docs_out == 25 and last.partitions == 3
    src_dir = out / s.phases[-2].phase / "data"
    dst_dir = out / last.phase / "data"
    for f in sorted(dst_dir.glob("*.parquet")):
        assert f.stat().st_ino == (src_dir / f.name).stat().st_ino  # hard link, same bytes
    assert sorted(x.id for x in load_documents(out)) == sorted(x.id for x in load_documents(out, s.phases[-2].phase))
    marker = json.loads(next((out / last.phase / "markers").glob("*.json")).read_text())
    assert marker["chars_out"] > 0 and sum(marker["by_source"].values()) == marker["docs_out"]
    assert json.loads((out / last.phase / "_state" / "count.json").read_text()) == {"docs": 25}


def test_next_global_step_is_prebuilt_beside_the_serial_half_of_a_fit(ray_local, tmp_path):
    """A global step's corpus-independent set-up (``prebuild``) runs as a Ray task once the
    previous phase's fit has finished its parallel tasks, and its fit gets it as ctx.prebuilt."""
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps({"text": f"text number {i}", "src": f"s{i % 2}"}) + "\n" for i in range(25)))
    d = {"inputs": [{"kind": "jsonl", "paths": [str(p)], "source_field": "src"}],
         "stages": [{"name": "prepare", "steps": [{"step": "pipeline_steps:ParallelCount"},
                                                  {"step": "pipeline_steps:PrebuiltIndex", "value": 7}]}],
         "engine": {"num_cpus": 2, "partition_rows": 10, "runtime_env": worker_env()}}
    out = tmp_path / "out"
    s = run_recipe(Recipe.from_dict(d), out, progress=False)
    assert [x.docs_out for x in s.phases] == [25, 25, 25]
    assert json.loads((out / s.phases[1].phase / "_state" / "count.json").read_text()) == {"docs": 25}
    st = json.loads((out / s.phases[2].phase / "_state" / "index.json").read_text())
    assert st == {"ahead": True, "value": 42, "elsewhere": True}
