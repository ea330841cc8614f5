"""``secfoundry eval``: run benchmarks, compare runs, score answers produced elsewhere.

Commands only parse options and call the library (``eval.runner``, ``eval.report``,
``eval.external``); heavy imports stay inside the commands so ``secfoundry --help`` is fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from secfoundry.cli._config import config_command
from secfoundry.eval.config import RunConfig

app = typer.Typer(no_args_is_help=True)


@app.command("run")
@config_command(RunConfig)
def run_cmd(cfg: RunConfig) -> None:
    """Evaluate a model; resumes from DIR/samples.jsonl when interrupted."""
    from rich.console import Console

    from secfoundry.core.errors import InputError
    from secfoundry.eval.console import RichProgress, summary_table
    from secfoundry.eval.runner import run_eval

    console = Console(stderr=True)
    progress = RichProgress(console)
    try:
        with progress:
            outcome = run_eval(cfg, progress=progress, argv=["secfoundry"] + sys.argv[1:])
    except InputError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/yellow]: answers so far are in {cfg.out}/samples.jsonl; "
                      "rerun the same command to resume")
        raise typer.Exit(130) from None
    console.print(summary_table(outcome.results, title=f"{cfg.model} · {cfg.protocol} · {cfg.mode}"))
    console.print(f"wrote {cfg.out}/config.json, results.json, samples.jsonl")


@app.command("report")
def report_cmd(
    runs: list[Path] = typer.Argument(..., help="Run directories (each with results.json)."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o",
                             help="report.html (a Markdown twin is written beside it) or report.md."),
) -> None:
    """Compare runs side by side: table (n, n_valid, parse failures) and a bar chart with CIs."""
    from rich.console import Console

    from secfoundry.core.errors import InputError
    from secfoundry.eval.report import write_report

    console = Console(stderr=True)
    try:
        written = write_report(runs, out)
    except InputError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    for p in written:
        console.print(f"wrote {p}")


@app.command("score")
def score_cmd(
    benchmark: str = typer.Option(..., "--benchmark", "-b", help="Benchmark name, e.g. ctibench-mcq."),
    predictions: Path = typer.Option(..., "--predictions", "-p",
                                     help="TSV/CSV (header row) or JSONL: one answer per item, benchmark order."),
    column: str = typer.Option(..., "--column", "-c", help="Column (or JSONL field) holding the answers."),
    protocol: str = typer.Option("official", "--protocol", help="official | faith"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir",
                                            help="Local benchmark copy (default SECFOUNDRY_DATA or ../shared/data/benchmarks)."),
    raw: bool = typer.Option(False, "--raw", help="Cells are full model outputs: extract the answer first."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Score answers produced elsewhere (e.g. the CTIBench authors' published responses)."""
    from rich.console import Console

    from secfoundry.core.errors import InputError
    from secfoundry.eval.data import DataUnavailable
    from secfoundry.eval.external import read_predictions, score_predictions

    if protocol not in ("official", "faith"):
        raise typer.BadParameter("must be official or faith", param_hint="--protocol")
    console = Console(stderr=True, soft_wrap=True)  # paths in errors must stay whole (greppable)
    try:
        cells = read_predictions(predictions, column)
        result = score_predictions(benchmark, cells, protocol=protocol, data_dir=data_dir, raw=raw,
                                   source=str(predictions))
    except (InputError, DataUnavailable, KeyError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    result = {"predictions": str(predictions), "column": column, **result}
    if as_json:
        typer.echo(json.dumps(result))
        return
    from secfoundry.eval.console import score_table

    Console().print(score_table(result, column, protocol))


@app.command("contamination")
def contamination_cmd(
    corpus: Path = typer.Option(..., "--corpus", help="A corpus run directory (last phase unless --phase), a folder "
                                                      "or glob of Parquet/JSONL/text files, or one file."),
    benchmark: Optional[list[str]] = typer.Option(None, "--benchmark", "-b",
                                                  help="Benchmark to check (repeatable; default: every one on disk)."),
    phase: Optional[str] = typer.Option(None, "--phase", help="Phase of a run directory (e.g. 02-prepare)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Local benchmark copy (default SECFOUNDRY_DATA "
                                                                      "or ../shared/data/benchmarks)."),
    text_field: str = typer.Option("text", "--text-field", help="Text column/field of Parquet/JSONL files."),
    min_share: float = typer.Option(0.5, "--min-share", help="Share of an item's informative 13-grams for a match."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write report.md (+ .json twin) or report.json."),
    examples: int = typer.Option(3, "--examples", help="Findings shown per benchmark."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
) -> None:
    """Which benchmark items a corpus contains, per benchmark, and where (document, span, why)."""
    from rich.console import Console

    from secfoundry.core.errors import InputError
    from secfoundry.corpus.prepare.contamination import MatchConfig
    from secfoundry.corpus.prepare.contamination_check import check_corpus, write_report

    console = Console(stderr=True, soft_wrap=True)
    try:
        rep = check_corpus(corpus, benchmark or None, data_dir=str(data_dir) if data_dir else None, phase=phase,
                           text_field=text_field, cfg=MatchConfig(min_share=min_share))
    except (InputError, KeyError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    if out is not None:
        for p in write_report(rep, out, examples):
            console.print(f"wrote {p}")
    if as_json:
        typer.echo(json.dumps(rep.to_dict()))
    else:
        typer.echo(rep.markdown(examples))
