"""Fixtures for the service tests: a tiny synthetic KB (built once), a service in a tmp home,
a TestClient and API keys. Offline; the KB uses the hashing embedder (no model)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from secfoundry.kb import KnowledgeBase
from secfoundry.kb.dense import DensePolicy, HashEmbedder
from tests.kb._kbsynth import ATTACKISH, CWEISH, EXTRA, make_source, write_source


@pytest.fixture(scope="session")
def tiny_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("servekb")
    mirror = root / "mirror"
    write_source(mirror, "alpha", ATTACKISH, "18.1")
    write_source(mirror, "beta", CWEISH, "4.14")
    write_source(mirror, "kev", EXTRA, "2025.08.25")
    kb = KnowledgeBase.open(root / "kb", embedder=HashEmbedder())
    report = kb.sync(mirror=mirror, connectors={n: make_source(n) for n in ("alpha", "beta", "kev")},
                     policy=DensePolicy(skip_types=frozenset(), passages=True))
    assert not report.failed
    kb.close()
    return root / "kb"


@pytest.fixture
def make_config(tmp_path: Path, tiny_kb: Path):
    from secfoundry.serve.config import ServeConfig

    def make(**kw) -> ServeConfig:
        kw.setdefault("home", tmp_path / "serve")
        kw.setdefault("kb_path", tiny_kb)
        return ServeConfig(**kw)

    return make


@pytest.fixture
def client(make_config) -> Iterator:
    from fastapi.testclient import TestClient

    from secfoundry.serve.app import create_app

    app = create_app(make_config())
    with TestClient(app) as c:
        yield c


@pytest.fixture
def key(client) -> str:
    _, k = client.app.state.service.keys.add("tester")
    return k


@pytest.fixture
def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
