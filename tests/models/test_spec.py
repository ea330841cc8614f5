"""Spec strings and load_model's argument checking (no model is loaded here)."""

from __future__ import annotations

import pytest

from secfoundry.models import EMBEDDED_ALIAS, ModelSpecError, load_model, parse_spec


@pytest.mark.parametrize(
    "spec, backend, target, name, rev",
    [
        (EMBEDDED_ALIAS, "embedded", EMBEDDED_ALIAS, None, None),
        ("hf:HuggingFaceTB/SmolLM2-135M", "hf", "HuggingFaceTB/SmolLM2-135M", None, None),
        ("hf:HuggingFaceTB/SmolLM2-135M@main", "hf", "HuggingFaceTB/SmolLM2-135M", None, "main"),
        ("hf:/models/llama", "hf", "/models/llama", None, None),
        ("hf:./rel/dir", "hf", "./rel/dir", None, None),
        ("hf:/x/model.Q4_1.gguf", "hf", "/x/model.Q4_1.gguf", None, None),
        ("openai:http://127.0.0.1:8000/v1#my-model", "openai", "http://127.0.0.1:8000/v1", "my-model", None),
        ("openai:https://api.example.com/v1/#org/model:tag", "openai", "https://api.example.com/v1",
         "org/model:tag", None),
        ("llamacpp:/x/m.gguf", "llamacpp", "/x/m.gguf", None, None),
        ("HF:org/name", "hf", "org/name", None, None),
    ],
)
def test_parse_valid(spec, backend, target, name, rev):
    ms = parse_spec(spec)
    assert (ms.backend, ms.target, ms.model_name, ms.revision) == (backend, target, name, rev)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("", "empty"),
        ("gpt4", "not a known alias"),
        ("foo:bar", "unknown backend"),
        ("hf:", "nothing after"),
        ("openai:http://host:8000/v1", "#MODEL"),
        ("openai:ftp://host/v1#m", "http(s)"),
        ("llamacpp:/x/model.bin", ".gguf"),
        ("hf:not a/valid id", "neither a local path"),
    ],
)
def test_parse_invalid(spec, fragment):
    with pytest.raises(ModelSpecError) as e:
        parse_spec(spec)
    assert fragment in str(e.value)
    assert "Valid forms" in str(e.value)


def test_load_model_rejects_unknown_option(tiny_llama_dir):
    with pytest.raises(ModelSpecError, match="unknown option"):
        load_model(f"hf:{tiny_llama_dir}", temprature=0.3)


def test_load_model_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(f"hf:{tmp_path}/nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(f"hf:{tmp_path}/nope.gguf")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(f"llamacpp:{tmp_path}/nope.gguf")
