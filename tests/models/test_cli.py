"""`secfoundry models ...` through typer's runner (tiny model and the fake server)."""

from __future__ import annotations

import json

from .fake_openai import FakeOpenAI
from typer.testing import CliRunner

from secfoundry.cli import app

runner = CliRunner()


def test_info_generate_score_tiny(tiny_llama_dir):
    spec = f"hf:{tiny_llama_dir}"
    r = runner.invoke(app, ["models", "info", spec, "--dtype", "fp32", "--threads", "1"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["backend"] == "hf" and d["dtype"] == "float32" and d["capabilities"]["prefix_cache"]

    r = runner.invoke(app, ["models", "generate", spec, "Hello", "--max-new-tokens", "4", "--dtype", "fp32",
                            "--threads", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["models", "generate", spec, "Hi", "--chat", "--max-new-tokens", "3", "--temperature",
                            "0.7", "--seed", "1", "--threads", "1"])
    assert r.exit_code == 0, r.output

    r = runner.invoke(app, ["models", "score", spec, "Question: x?\\nAnswer:", "--choices", " A, B, C, D",
                            "--dtype", "fp32", "--threads", "1", "-o", "batch_size=2"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["choices"] == [" A", " B", " C", " D"] and len(out["logprobs"]) == 4
    assert abs(sum(out["probs_normalised"]) - 1) < 1e-6


def test_bad_spec_and_option(tiny_llama_dir):
    r = runner.invoke(app, ["models", "info", "nonsense"])
    assert r.exit_code != 0 and "bad model spec" in str(r.exception)
    r = runner.invoke(app, ["models", "info", f"hf:{tiny_llama_dir}", "-o", "noequals"])
    assert r.exit_code != 0


def test_openai_via_cli():
    with FakeOpenAI() as s:
        r = runner.invoke(app, ["models", "generate", f"openai:{s.url}#ok", "hello", "--threads", "2",
                                "-o", "max_concurrency=2"])
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith(" echo:")
        r = runner.invoke(app, ["models", "score", f"openai:{s.url}#ok", "Q\\nAnswer:"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["best"] == " A"
