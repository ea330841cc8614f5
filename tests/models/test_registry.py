"""Backends register with a decorator; outside backends register lazily by module name."""

from __future__ import annotations

import sys

import pytest

from secfoundry.models import ModelSpecError, load_model, parse_spec
from secfoundry.models import registry


@pytest.fixture
def fake_backend():
    registry.register_lazy_backend("fake", "tests.models._fake_backend")
    yield
    registry._MODULES.pop("fake", None)
    registry._BACKENDS.pop("fake", None)
    sys.modules.pop("tests.models._fake_backend", None)


def test_builtins_are_known_without_importing_them():
    assert {"hf", "openai", "llamacpp"} <= set(registry.known_backends())
    assert parse_spec("hf:/x").backend == "hf"


def test_lazy_backend_is_imported_on_first_use(fake_backend):
    assert "tests.models._fake_backend" not in sys.modules
    m = load_model("fake:anything#x", greeting="hi", threads=None)  # None options are dropped
    assert "tests.models._fake_backend" in sys.modules
    assert m.describe() == {"spec": "fake:anything#x", "backend": "fake"} and m.opts == {"greeting": "hi"}
    assert parse_spec("fake:t").target == "t"


def test_unknown_option_and_backend_are_refused(fake_backend):
    with pytest.raises(ModelSpecError, match="unknown option"):
        load_model("fake:x", temperature=1)
    with pytest.raises(ModelSpecError, match="unknown backend 'nope'"):
        load_model("nope:x")


def test_a_prefix_cannot_be_taken_twice(fake_backend):
    with pytest.raises(ValueError, match="already provided"):
        registry.register_lazy_backend("fake", "somewhere.else")
    load_model("fake:x")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_backend("fake")(lambda ms, **o: None)

