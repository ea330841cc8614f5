"""Pipeline commands on ``secfoundry corpus``: run, collect, crawl, status, steps.

Heavy imports (ray, pyarrow, httpx) stay inside the commands so ``secfoundry --help`` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from secfoundry.corpus.cli import app


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _run(recipe, out: Path, mirror: Optional[Path], ray_address: Optional[str], until: Optional[str],
         num_cpus: Optional[int], verbose: bool, retry_failed: bool = False, report: bool = False) -> None:
    from secfoundry.corpus.pipeline import PhaseFailed, run_recipe
    from secfoundry.core.errors import InputError
    from secfoundry.core.paths import mirror_dir

    console = _console()
    if num_cpus is not None:
        recipe.engine.num_cpus = num_cpus
    recipe.engine.verbose = recipe.engine.verbose or verbose
    m = mirror_dir(mirror)
    try:
        summary = run_recipe(recipe, out, mirror=str(m) if m else None, ray_address=ray_address, until=until,
                             console=console, retry_failed=retry_failed)
    except InputError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2)
    except PhaseFailed as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1)
    summary.render(console)
    console.print(f"documents: {summary.to_dict()['documents_out']:,} in {len(summary.output_files)} file(s); "
                  f"summary: {out / 'summary.json'}")
    if report:
        try:
            from secfoundry.corpus.report import write_report

            console.print(f"report: {write_report(out)}")
        except Exception as e:  # the corpus is done; a report problem must not hide that
            console.print(f"[yellow]report not written: {type(e).__name__}: {e} "
                          f"(try `secfoundry corpus report {out}`)[/]")


def _load(recipe_path: Path):
    from secfoundry.corpus.engine.recipe import Recipe
    from secfoundry.core.errors import InputError

    try:
        return Recipe.from_yaml(recipe_path)
    except (InputError, OSError) as e:
        _console().print(f"[red]error:[/] {e}")
        raise typer.Exit(2)


@app.command("run")
def run_cmd(
    recipe: Path = typer.Argument(..., help="Recipe YAML, e.g. configs/corpus/quickstart.yaml"),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (phase partitions, exclusions, summary)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                              help="Join a Ray cluster ('auto', ray://host:port); default: local Ray."),
    mirror: Optional[Path] = typer.Option(None, "--mirror", help="Source mirror dir (default SECFOUNDRY_MIRROR, else live)."),
    until: Optional[str] = typer.Option(None, "--until", help="Stop after this stage (collect, process, ...)."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", help="CPUs for the local Ray instance."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Ray's own logs and progress."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Retry collect inputs that failed (later stages are rebuilt)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write OUT/report.html (+ .md) at the end."),
) -> None:
    """Run a corpus recipe: collect → process → prepare. Rerun the same command to resume."""
    _run(_load(recipe), out, mirror, ray_address, until, num_cpus, verbose, retry_failed, report)


@app.command("collect")
def collect_cmd(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe whose inputs to collect (its stages are not run)."),
    out: Path = typer.Option(..., "--out", "-o"),
    source: list[str] = typer.Option([], "--source", help="Connector name (repeatable; 'all' for every one)."),
    warc: list[str] = typer.Option([], "--warc", help="WARC/WET file, glob, *.paths(.gz) manifest or URL (repeatable)."),
    jsonl: list[str] = typer.Option([], "--jsonl", help="JSONL file or glob (field 'text'; repeatable)."),
    parquet: list[str] = typer.Option([], "--parquet", help="Parquet file or glob (repeatable)."),
    general: Optional[Path] = typer.Option(None, "--general", help="General-text replay dir."),
    max_docs: Optional[int] = typer.Option(None, "--max-docs", help="Per source/file cap."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address"),
    mirror: Optional[Path] = typer.Option(None, "--mirror"),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus"),
    verbose: bool = typer.Option(False, "--verbose"),
) -> None:
    """Stage 1 only: documents from connectors and existing crawls into Parquet partitions."""
    from secfoundry.corpus.engine.recipe import (GeneralInput, JsonlInput, ParquetInput, Recipe, SourcesInput,
                                                 WarcInput)

    if recipe is not None:
        rec = _load(recipe)
    else:
        inputs: list = []
        if source:
            inputs.append(SourcesInput(names=source, max_docs=max_docs))
        if warc:
            inputs.append(WarcInput(paths=warc, max_docs=max_docs))
        if jsonl:
            inputs.append(JsonlInput(paths=jsonl, max_docs=max_docs))
        if parquet:
            inputs.append(ParquetInput(paths=parquet, max_docs=max_docs))
        if general:
            inputs.append(GeneralInput(path=str(general), max_docs=max_docs))
        if not inputs:
            _console().print("[red]error:[/] give a recipe or at least one of --source/--warc/--jsonl/--parquet/--general")
            raise typer.Exit(2)
        rec = Recipe(name="collect", inputs=inputs)
    _run(rec, out, mirror, ray_address, "collect", num_cpus, verbose)


@app.command("crawl")
def crawl_cmd(
    seed: list[str] = typer.Option([], "--seed", help="Seed URL (repeatable)."),
    seeds_file: Optional[Path] = typer.Option(None, "--seeds-file", help="One URL per line (# comments)."),
    out: Path = typer.Option(..., "--out", "-o", help="WARC file to write (.warc.gz recommended)."),
    max_pages: int = typer.Option(1000, "--max-pages"),
    max_depth: int = typer.Option(3, "--max-depth"),
    max_pages_per_host: Optional[int] = typer.Option(None, "--max-pages-per-host"),
    delay: float = typer.Option(1.0, "--delay", help="Seconds between requests to one host."),
    concurrency: int = typer.Option(8, "--concurrency"),
    host_concurrency: int = typer.Option(1, "--host-concurrency"),
    relevance: str = typer.Option("keywords", "--relevance",
                                  help="Follow links from: keywords | all | step:<name> | module:function"),
    same_host: bool = typer.Option(False, "--same-host", help="Do not follow links to other hosts."),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Only crawl these hosts (and subdomains)."),
    no_robots: bool = typer.Option(False, "--ignore-robots", help="Ignore robots.txt (only for your own sites)."),
    resume: list[Path] = typer.Option([], "--resume",
                                      help="WARC(s) of an interrupted crawl with the same settings: their pages "
                                           "are not fetched again and their links rebuild the frontier."),
) -> None:
    """Wide-net crawl from seeds into a WARC (replay it with `corpus collect --warc`)."""
    from secfoundry.corpus.collect.crawler import CrawlConfig, crawl

    seeds = list(seed)
    if seeds_file:
        seeds += [s.strip() for s in seeds_file.read_text().splitlines() if s.strip() and not s.startswith("#")]
    if not seeds:
        _console().print("[red]error:[/] no seeds (--seed or --seeds-file)")
        raise typer.Exit(2)
    cfg = CrawlConfig(seeds=seeds, max_pages=max_pages, max_depth=max_depth, max_pages_per_host=max_pages_per_host,
                      delay_s=delay, concurrency=concurrency, host_concurrency=host_concurrency, relevance=relevance,
                      follow_external=not same_host, allowed_hosts=allow_host, respect_robots=not no_robots)
    console = _console()
    with console.status(f"crawling {len(seeds)} seed(s) → {out}"):
        stats = crawl(cfg, out, resume=resume)
    console.print_json(json.dumps(stats.to_dict()))


@app.command("status")
def status_cmd(out: Path = typer.Argument(..., help="Run directory of `corpus run`.")) -> None:
    """Per phase: partitions done/planned and documents in/out (works while a run is going)."""
    from rich.console import Console
    from rich.table import Table

    from secfoundry.corpus.pipeline import run_status

    try:
        rows = run_status(out)
    except FileNotFoundError as e:
        _console().print(f"[red]error:[/] {e}")
        raise typer.Exit(2)
    if not rows:
        _console().print(f"[red]error:[/] {out}: no corpus run here")
        raise typer.Exit(2)
    t = Table(title=str(out))
    for c in ("phase", "partitions", "docs in", "docs out", "dropped", "state"):
        t.add_column(c, justify="left" if c in ("phase", "state") else "right", no_wrap=c == "phase")
    for r in rows:
        state = "[green]complete[/]" if r["complete"] else ("[yellow]partial[/]" if r["done"] else "pending")
        if r["input_errors"]:
            state += f" [red]{r['input_errors']} input error(s)[/]"
        t.add_row(r["phase"], f"{r['done']}/{r['planned']}", f"{r['docs_in']:,}", f"{r['docs_out']:,}",
                  f"{r['dropped']:,}", state)
    Console().print(t)


@app.command("steps")
def steps_cmd() -> None:
    """List the steps recipes can use (name, kind, config class)."""
    from rich.console import Console
    from rich.table import Table

    from secfoundry.corpus.engine.steps import available_steps, config_class

    t = Table(title="corpus steps")
    for c in ("step", "kind", "class", "options"):
        t.add_column(c)
    for name, cls in available_steps().items():
        cfg = config_class(cls)
        opts = ", ".join(cfg.__dataclass_fields__) if cfg else ""
        t.add_row(name, getattr(cls, "kind", "map"), f"{cls.__module__}.{cls.__name__}", opts)
    Console().print(t)
