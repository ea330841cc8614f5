"""``secfoundry train``: continued pretraining from a recipe, checkpoint export (thin: the work is
in ``secfoundry.train``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("run")
def run_cmd(
    config: Path = typer.Argument(..., exists=True, help="Training recipe (YAML), e.g. configs/train/smollm2-135m-cpt.yaml"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in out_dir."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set optim.lr=1e-4 (repeatable)."),
    out_dir: Optional[str] = typer.Option(None, "--out", help="Override out_dir."),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """Continued pretraining from a recipe. Under `accelerate launch` it runs distributed."""
    from rich.console import Console
    from rich.table import Table

    from secfoundry.train.config import TrainConfig
    from secfoundry.train.trainer import Trainer

    overrides = list(set_) + ([f"out_dir={out_dir}"] if out_dir else [])
    cfg = TrainConfig.from_yaml(config, overrides)
    res = Trainer(cfg).run(resume=resume, progress=not no_progress)
    if os.environ.get("RANK", "0") != "0":
        return  # under accelerate launch: one summary, from rank 0
    t = Table(title="training summary")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("steps", str(res.steps))
    t.add_row("tokens", f"{res.tokens:,}")
    t.add_row("final train loss", f"{res.final_loss:.4f}")
    for k, v in res.evals.items():
        t.add_row(k, f"{v:.4f}")
    t.add_row("wall time", f"{res.wall_s:.0f} s")
    t.add_row("export", str(res.export_dir))
    Console().print(t)


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Argument(..., exists=True, help="A checkpoint dir (out_dir/checkpoints/step-N)."),
    out: Path = typer.Option(..., "--out", help="Destination HF model directory."),
    dtype: str = typer.Option("bfloat16", help="bfloat16 | float16 | float32"),
) -> None:
    """Export a training checkpoint as an HF model directory (safetensors + tokenizer)."""
    from secfoundry.train.model import export_checkpoint

    typer.echo(str(export_checkpoint(checkpoint, out, dtype)))


@app.command("plan")
def plan_cmd(
    config: Path = typer.Argument(..., exists=True, help="Training recipe (YAML), e.g. configs/train/foundation-sec-8b.yaml"),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="Data-parallel GPUs (default: num_processes of the accelerate config, else 1)."),
    stage: Optional[str] = typer.Option(None, "--stage", help="ddp | zero1 | zero2 | zero3 | fsdp | fsdp-grad-op (default: from the accelerate config)."),
    accelerate_config: Optional[Path] = typer.Option(None, "--accelerate-config", help="Accelerate config (default: the one the recipe's launch comment names)."),
    gpu: str = typer.Option("h100", "--gpu", help="h100 | a100 | h200 (peak dense bf16 FLOP/s and memory)."),
    mfu: float = typer.Option(0.4, "--mfu", help="Model FLOPs utilisation assumed for tokens/s."),
    tokens: Optional[int] = typer.Option(None, "--tokens", help="Tokens to train on (default: the shards' train split, else max_steps x tokens/step)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set micro_batch_size=4 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Size a recipe on the meta device: parameters, per-GPU memory, activations, tokens/s and days."""
    import json

    from rich.console import Console

    from secfoundry.train.plan import make_plan, render

    try:
        p = make_plan(config, overrides=list(set_), gpus=gpus, stage=stage, accelerate_config=accelerate_config,
                      gpu=gpu, mfu=mfu, tokens=tokens)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    if as_json:
        typer.echo(json.dumps(p.to_dict(), indent=2))
    else:
        Console().print(render(p))
