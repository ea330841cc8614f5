"""``secfoundry corpus report RUN_DIR [--out report.html]``: the run report (HTML + Markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from secfoundry.corpus.cli import app


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A corpus run directory (secfoundry corpus run --out DIR), complete or not."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML path (default RUN_DIR/report.html); "
                                       "report.md and report_assets/ are written next to it."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Re-read every partition instead of RUN_DIR/.report_cache."),
    max_partitions: Optional[int] = typer.Option(None, "--max-partitions",
                                                 help="Read at most this many partitions per phase (large runs); "
                                                      "sizes are extrapolated, counts stay exact."),
) -> None:
    """Report a corpus run: documents/bytes/tokens per stage, drop reasons with examples,
    per-source keep rates and tokens, language and length histograms."""
    from rich.console import Console

    from secfoundry.corpus.report import write_report
    from secfoundry.core.errors import InputError

    console = Console(stderr=True)
    try:
        path = write_report(run_dir, out, use_cache=not no_cache, max_partitions=max_partitions)
    except InputError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2)
    console.print(f"report: {path}  (+ {path.with_suffix('.md')})")
