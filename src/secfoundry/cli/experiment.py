"""``secfoundry experiment``: the replication run and its report (thin: the work is in
``secfoundry.experiment``)."""

from __future__ import annotations

from pathlib import Path

import typer

from secfoundry.cli._config import config_command
from secfoundry.experiment.config import ReplicateConfig

app = typer.Typer(no_args_is_help=True)


@app.command("replicate")
@config_command(ReplicateConfig)
def replicate_cmd(
    cfg: ReplicateConfig,
    no_results_md: bool = typer.Option(False, "--no-results-md", hidden=True,
                                       help="Kept for old scripts: RESULTS.md is only written with --results-md."),
) -> None:
    """Corpus -> base eval -> continued pretraining -> eval -> report in --out (and --results-md)."""
    from secfoundry.experiment.replicate import replicate

    if no_results_md:
        cfg.results_md = None
    replicate(cfg, say=typer.echo)
    typer.echo((cfg.out / "report.md").read_text())
    typer.echo(f"summary: {cfg.out / 'summary.json'}")


@app.command("report")
def report_cmd(out: Path = typer.Argument(Path("runs/replicate"), help="An experiment directory (with summary.json).")) -> None:
    """Re-render report.md / report.html (table with CIs, loss curve) from a finished experiment."""
    from secfoundry.experiment.report import write_reports

    if not (out / "summary.json").exists():
        raise typer.BadParameter(f"{out / 'summary.json'} not found: run `secfoundry experiment replicate` first")
    typer.echo(write_reports(out))
    typer.echo(f"report: {out / 'report.html'}")
