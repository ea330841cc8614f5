"""Fixtures for the knowledge-base tests: a synthetic mirror and connectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from ._kbsynth import ATTACKISH, CWEISH, EXTRA, make_source, write_source

from secfoundry.sources.base import Source


@pytest.fixture
def synth_mirror(tmp_path: Path) -> Path:
    m = tmp_path / "mirror"
    write_source(m, "alpha", ATTACKISH, "18.1")
    write_source(m, "beta", CWEISH, "4.14")
    write_source(m, "kev", EXTRA, "2025.08.25")
    return m


@pytest.fixture
def connectors() -> dict[str, type[Source]]:
    return {n: make_source(n) for n in ("alpha", "beta", "kev")}


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    return tmp_path / "kb"
