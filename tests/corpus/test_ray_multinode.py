"""The corpus engine on a real two-node Ray cluster (issue #15, item 3): a head and a separately
started worker node (``ray start --head`` / ``ray start --address``, one CPU each, this machine),
the run joined with ``ray_address``. The output must equal the local run's (ids and content
hashes, every phase, exclusions too) with work on both nodes; then the worker node is SIGKILLed
mid-phase and the run must finish (Ray reschedules on the head) or resume (the engine) with no
document lost or duplicated. The cluster lives in a temporary directory and is always torn down.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from secfoundry.corpus.engine.recipe import Recipe
from secfoundry.corpus.pipeline import run_recipe

from .test_pipeline import write_inputs

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BENCH = REPO / "bench"

pytestmark = pytest.mark.slow


def _bench():
    spec = importlib.util.spec_from_file_location("ray_multinode", BENCH / "ray_multinode.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("ray_multinode", mod)
    spec.loader.exec_module(mod)
    return sys.modules["ray_multinode"]


def _recipe(glob: str, probe_log: Path | None, pythonpath: str) -> dict:
    probe = [{"step": "ray_multinode:NodeProbe", "log": str(probe_log)}] if probe_log else []
    return {
        "name": "multinode",
        "inputs": [{"kind": "jsonl", "paths": [glob], "text_field": "doc.body", "id_field": "uid",
                    "url_field": "link", "source": "testsrc", "license": "CC0-1.0"}],
        "stages": [
            {"name": "process", "steps": [{"step": "length_filter", "min_chars": 10},
                                          {"step": "pipeline_steps:Slow", "seconds": 0.2}, *probe]},
            # real global steps: their fits run Ray tasks (map_partitions) on the cluster
            {"name": "prepare", "steps": [{"step": "exact_dedup"}, {"step": "minhash_dedup"}, *probe]},
        ],
        "engine": {"num_cpus": 2, "partition_rows": 10, "batch_size": 4,
                   "runtime_env": {"env_vars": {"PYTHONPATH": pythonpath, "RAY_USAGE_STATS_ENABLED": "0"}}},
    }


@pytest.mark.skipif(shutil.which("ray", path=str(Path(sys.executable).parent)) is None,
                    reason="the ray CLI is not installed next to this Python")
def test_two_node_cluster_matches_local_and_survives_losing_the_worker(ray_local, tmp_path):
    rm = _bench()
    glob = write_inputs(tmp_path / "in", files=12, per_file=10)
    pythonpath = os.pathsep.join([str(BENCH), str(HERE)])
    # the local reference (the laptop path); the probe step only logs, so it is left out here
    run_recipe(Recipe.from_dict(_recipe(glob, None, str(HERE))), tmp_path / "ref", progress=False)
    ref = rm.fingerprint_run(tmp_path / "ref")
    assert sum(len(p["docs"]) for p in ref.values()) > 100

    with rm.LocalRayCluster(env={"PYTHONPATH": pythonpath}) as cl:
        cl.start(workers=1, timeout=120)
        denv = {**cl.client_env, "PYTHONPATH": pythonpath}  # drivers import the test-only steps too

        # 1. the whole run on head + worker: identical output, both nodes worked
        (tmp_path / "a.yaml").write_text(yaml.safe_dump(_recipe(glob, tmp_path / "a-nodes.log", pythonpath)))
        a = rm.run_driver(tmp_path / "a.yaml", tmp_path / "a", cl.address, timeout=240, env=denv)
        assert a["rc"] == 0, a.get("stderr", "") + cl.logs()
        cmp = rm.compare_runs(ref, rm.fingerprint_run(tmp_path / "a"))
        assert cmp["identical"], cmp
        nodes = rm.probe_counts(tmp_path / "a-nodes.log")
        assert len(nodes) == 2 and all(n > 0 for n in nodes.values()), nodes

        # 2. the worker node dies mid-phase (its raylet, agents and Ray workers SIGKILLed)
        (tmp_path / "b.yaml").write_text(yaml.safe_dump(_recipe(glob, tmp_path / "b-nodes.log", pythonpath)))
        drv = rm.start_driver(tmp_path / "b.yaml", tmp_path / "b", cl.address, env=denv,
                              log=tmp_path / "b-driver.log")
        try:
            done = rm.wait_markers(tmp_path / "b" / "01-process", 3, drv, timeout=120)
            assert drv.poll() is None and 3 <= done < 12, (done, (tmp_path / "b-driver.log").read_text()[-3000:])
            assert cl.kill_worker(0) >= 2  # a raylet and more
            drv.communicate(timeout=240)
        finally:
            if drv.poll() is None:
                rm.kill_tree(drv.pid)
        if drv.returncode != 0:  # the engine's resume: rerun the same command on what is left
            again = rm.run_driver(tmp_path / "b.yaml", tmp_path / "b", cl.address, timeout=240, env=denv)
            assert again["rc"] == 0, again.get("stderr", "") + cl.logs()
        got = rm.fingerprint_run(tmp_path / "b")
        cmp = rm.compare_runs(ref, got)
        assert cmp["identical"], cmp  # no document lost, duplicated or changed, in any phase
        last = list(got)[-1]
        assert got[last]["duplicates"] == 0 and len(got[last]["docs"]) == len(ref[last]["docs"])
