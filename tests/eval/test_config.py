"""RunConfig / ReplicateConfig: one typed config from YAML, from CLI options, or both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from secfoundry.cli._config import config_command
from secfoundry.eval.config import RunConfig
from secfoundry.experiment.config import ReplicateConfig


def _echo_app(cls) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @config_command(cls)
    def show(cfg, extra: int = typer.Option(0, "--extra")) -> None:
        typer.echo(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(cfg).items()} | {"_extra": extra}))

    @app.command()
    def other() -> None:  # a second command keeps `show` a named sub-command
        pass

    return app


def _run(cls, *args: str) -> tuple[int, dict | str]:
    r = CliRunner().invoke(_echo_app(cls), ["show", *args])
    return r.exit_code, (json.loads(r.output) if r.exit_code == 0 else r.output)


def test_options_build_the_config():
    code, cfg = _run(RunConfig, "-b", "ctibench-mcq, seceval", "--out", "o", "--mode", "logprob", "--permute",
                     "--threads", "2", "--extra", "7")
    assert code == 0, cfg
    assert cfg["benchmarks"] == ["ctibench-mcq", "seceval"] and cfg["out"] == "o" and cfg["mode"] == "logprob"
    assert cfg["permute"] is True and cfg["threads"] == 2 and cfg["instruct"] is None and cfg["_extra"] == 7
    assert cfg["model"] == "smollm2-135m-instruct" and cfg["protocol"] == "faith"


def test_yaml_then_options_win(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("model: hf:/m\nbenchmarks: [seceval]\nout: runs/x\nprotocol: official\nshots: 3\ntemperature: 1e-1\n")
    code, cfg = _run(RunConfig, "--config", str(y), "--shots", "0", "--base")
    assert code == 0, cfg
    assert cfg["model"] == "hf:/m" and cfg["benchmarks"] == ["seceval"] and cfg["protocol"] == "official"
    assert cfg["shots"] == 0 and cfg["instruct"] is False and cfg["temperature"] == 0.1  # YAML's "1e-1" coerced
    assert RunConfig.from_yaml(y).out == Path("runs/x")


def test_bad_config_is_refused_with_the_reason(tmp_path):
    code, out = _run(RunConfig, "-b", "seceval")
    assert code == 2 and "--out" in out
    code, out = _run(RunConfig, "-b", "seceval", "-o", "x", "--protocol", "nope")
    assert code == 2 and "official or faith" in out
    y = tmp_path / "bad.yaml"
    y.write_text("benchmarks: [seceval]\nout: x\nshotz: 3\n")
    code, out = _run(RunConfig, "--config", str(y))
    assert code == 2 and "shotz" in out
    with pytest.raises(ValueError, match="judge"):
        RunConfig(benchmarks=["x"], out=Path("o"), judge="nope:x")


def test_replicate_config_from_options_and_yaml(tmp_path):
    code, cfg = _run(ReplicateConfig, "--benchmarks", "seceval", "--set", "max_steps=5", "--set", "seed=2",
                     "--eval-limit", "10")
    assert code == 0, cfg
    assert cfg["benchmarks"] == ["seceval"] and cfg["train_overrides"] == ["max_steps=5", "seed=2"]
    assert cfg["results_md"] is None and cfg["eval_limit"] == 10 and cfg["permute_limit"] == 400
    assert Path(cfg["corpus_recipe"]).is_file() and Path(cfg["train_recipe"]).is_file()
    y = tmp_path / "exp.yaml"
    y.write_text("out: runs/e\nresults_md: RESULTS.md\ntrain_overrides: [max_steps=3]\n")
    c = ReplicateConfig.from_yaml(y)
    assert c.results_md == Path("RESULTS.md") and c.train_overrides == ["max_steps=3"]
