"""`secfoundry experiment` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("replicate")
def replicate_cmd(
    out: Path = typer.Option(Path("runs/replicate"), "--out"),
    mirror: Optional[str] = typer.Option(None, "--mirror", envvar="SECFOUNDRY_MIRROR", help="Source mirror dir."),
    corpus_recipe: Optional[Path] = typer.Option(None, "--corpus-recipe"),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Reuse a finished corpus run (its shards/) instead of building one."),
    base_from: Optional[Path] = typer.Option(None, "--base-from", help="Reuse the base model's results from an earlier experiment dir (same corpus)."),
    train_recipe: Optional[Path] = typer.Option(None, "--train-recipe"),
    benchmarks: str = typer.Option("ctibench-mcq,cybermetric-500,seceval", "--benchmarks"),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="Items per benchmark (default: all)."),
    permute_limit: int = typer.Option(400, "--permute-limit", help="CTIBench-MCQ rotation check on this many questions; 0 = skip."),
    option_limit: int = typer.Option(400, "--option-limit", help="CTIBench-MCQ scored by option texts on this many questions; 0 = skip."),
    ppl_batches: int = typer.Option(16, "--ppl-batches", help="Held-out batches (8 rows each) per perplexity set; 0 = all."),
    set_: list[str] = typer.Option([], "--set", help="Training overrides, e.g. --set max_steps=200."),
    no_results_md: bool = typer.Option(False, "--no-results-md", help="Do not append to RESULTS.md."),
) -> None:
    """Corpus -> base eval -> continued pretraining -> eval -> report (RESULTS.md)."""
    from secfoundry.experiment import ReplicateConfig, replicate

    cfg = ReplicateConfig(out=out, mirror=mirror, benchmarks=[b for b in benchmarks.split(",") if b],
                          eval_limit=eval_limit, train_overrides=list(set_), ppl_batches=ppl_batches,
                          permute_limit=permute_limit, option_limit=option_limit)
    if corpus:
        cfg.corpus_dir = corpus
    if base_from:
        cfg.base_from = base_from
    if corpus_recipe:
        cfg.corpus_recipe = corpus_recipe
    if train_recipe:
        cfg.train_recipe = train_recipe
    if no_results_md:
        cfg.results_md = None
    summary = replicate(cfg, say=typer.echo)
    typer.echo((out / "report.md").read_text())
    typer.echo(f"summary: {out / 'summary.json'}")
    _ = summary


@app.command("report")
def report_cmd(out: Path = typer.Argument(Path("runs/replicate"), help="An experiment directory (with summary.json).")) -> None:
    """Re-render report.md / report.html (table with CIs, loss curve) from a finished experiment."""
    from secfoundry.experiment import write_reports

    if not (out / "summary.json").exists():
        raise typer.BadParameter(f"{out / 'summary.json'} not found: run `secfoundry experiment replicate` first")
    typer.echo(write_reports(out))
    typer.echo(f"report: {out / 'report.html'}")
