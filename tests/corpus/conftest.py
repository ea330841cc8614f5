"""Corpus test fixtures: one small local Ray instance shared by the whole session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# Recipes name test-only steps as "pipeline_steps:<Class>": importable by the driver (here) and by
# Ray workers (PYTHONPATH in worker_env).
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def worker_env() -> dict:
    """Ray runtime_env that lets workers import the test-only steps in tests/corpus."""
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"env_vars": {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}}


@pytest.fixture(scope="session")
def ray_local() -> str:
    """Start (once) a 2-CPU local Ray with a small object store; yields its address so that
    subprocess drivers can join it instead of paying Ray's start-up again."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from secfoundry.corpus.engine.ray_runtime import init_ray

    if ray.is_initialized():  # started by another test without our runtime_env: restart it
        ray.shutdown()
    # workers import test-only steps (pipeline_steps.py) from here
    init_ray(None, num_cpus=2, object_store_mb=128, runtime_env=worker_env())
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
