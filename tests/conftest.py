"""Shared fixtures: offline data locations, an isolated SECFOUNDRY_HOME, tiny random models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED


@pytest.fixture(scope="session")
def bench_dir(shared_data: Path) -> Path:
    return shared_data / "benchmarks"


@pytest.fixture(scope="session")
def mirror(shared_data: Path) -> Path:
    return shared_data / "mirror"


@pytest.fixture(scope="session")
def datasets_dir(shared_data: Path) -> Path:
    return shared_data / "datasets"


@pytest.fixture(scope="session")
def persistent_home(tmp_path_factory) -> Path:
    """A SECFOUNDRY_HOME shared by the whole session (e.g. the converted SmolLM2 is made once).

    Honours an already-set SECFOUNDRY_HOME so developers can reuse their cache.
    """
    env = os.environ.get("SECFOUNDRY_TEST_HOME")
    p = Path(env) if env else tmp_path_factory.getbasetemp().parent / "secfoundry-test-home"
    p.mkdir(parents=True, exist_ok=True)
    return p


@pytest.fixture(autouse=True)
def _isolated_home(monkeypatch, persistent_home: Path):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(persistent_home))
