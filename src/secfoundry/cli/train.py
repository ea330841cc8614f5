"""``secfoundry train``: continued pretraining from a recipe, checkpoint export (thin: the work is
in ``secfoundry.train``)."""

from __future__ import annotations

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
