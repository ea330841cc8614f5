"""``secfoundry corpus``: run, collect, crawl, status, steps, report, relevance, audit-filters and
single-step debugging commands (extract, route, pii).

Commands parse options and call library functions in ``secfoundry.corpus``; heavy imports (ray,
pyarrow, httpx, torch) stay inside the commands so ``secfoundry --help`` is fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)
relevance_app = typer.Typer(no_args_is_help=True, help="Train / evaluate the relevance classifier.")
app.add_typer(relevance_app, name="relevance")


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _fail(message: object, code: int = 2) -> typer.Exit:
    _console().print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8", errors="replace")


def _run(recipe, out: Path, mirror: Optional[Path], ray_address: Optional[str], until: Optional[str],
         num_cpus: Optional[int], verbose: bool, retry_failed: bool = False, report: bool = False) -> None:
    from secfoundry.core.errors import InputError
    from secfoundry.core.paths import mirror_dir
    from secfoundry.corpus.pipeline import PhaseFailed, run_recipe

    console = _console()
    if num_cpus is not None:
        recipe.engine.num_cpus = num_cpus
    recipe.engine.verbose = recipe.engine.verbose or verbose
    m = mirror_dir(mirror, default=recipe.mirror)
    try:
        summary = run_recipe(recipe, out, mirror=str(m) if m else None, ray_address=ray_address, until=until,
                             console=console, retry_failed=retry_failed)
    except InputError as e:
        raise _fail(e)
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
    from secfoundry.core.errors import InputError
    from secfoundry.corpus.engine.recipe import Recipe

    try:
        return Recipe.from_yaml(recipe_path)
    except (InputError, OSError) as e:
        raise _fail(e)


@app.command("run")
def run_cmd(
    recipe: Path = typer.Argument(..., help="Recipe YAML, e.g. configs/corpus/quickstart.yaml"),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (phase partitions, exclusions, summary)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                              help="Join a Ray cluster ('auto', ray://host:port); default: local Ray."),
    mirror: Optional[Path] = typer.Option(None, "--mirror", help="Source mirror dir (default SECFOUNDRY_MIRROR, else ../shared/data/mirror in a checkout, else live)."),
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
    from secfoundry.core.errors import InputError
    from secfoundry.corpus.engine.recipe import Recipe

    try:
        rec = _load(recipe) if recipe is not None else Recipe.collect_only(
            sources=source, warc=warc, jsonl=jsonl, parquet=parquet, general=str(general) if general else None,
            max_docs=max_docs)
    except InputError as e:
        raise _fail(e)
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
        raise _fail("no seeds (--seed or --seeds-file)")
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
        raise _fail(e)
    if not rows:
        raise _fail(f"{out}: no corpus run here")
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

    from secfoundry.corpus.engine.registry import available_steps, config_class

    t = Table(title="corpus steps")
    for c in ("step", "kind", "class", "options"):
        t.add_column(c)
    for name, cls in available_steps().items():
        cfg = config_class(cls)
        t.add_row(name, getattr(cls, "kind", "map"), f"{cls.__module__}.{cls.__name__}",
                  ", ".join(cfg.__dataclass_fields__) if cfg else "")
    Console().print(t)


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
    from secfoundry.core.errors import InputError
    from secfoundry.corpus.report import write_report

    try:
        path = write_report(run_dir, out, use_cache=not no_cache, max_partitions=max_partitions)
    except InputError as e:
        raise _fail(e)
    _console().print(f"report: {path}  (+ {path.with_suffix('.md')})")


@relevance_app.command("train")
def relevance_train(
    seed: Optional[Path] = typer.Option(None, help="relevance-seed.jsonl (default: ../shared/data/datasets)"),
    out: Optional[Path] = typer.Option(None, help="model dir (default: SECFOUNDRY_HOME/models/relevance)"),
    extra: list[Path] = typer.Option([], help="extra labelled JSONL (text, label[, source, split]); train split used"),
    no_hard_negatives: bool = typer.Option(False, help="train on the seed only"),
    c: float = typer.Option(16.0, "--C", help="inverse L2 regularisation"),
    threshold: float = typer.Option(0.5, help="decision threshold saved with the model"),
    no_char: bool = typer.Option(False, help="word n-grams only (faster, less accurate)"),
) -> None:
    """Train the hashed n-gram logistic classifier and save it (npz + json, no pickle)."""
    from rich.console import Console

    from secfoundry.corpus.process.relevance_jobs import train_classifier

    con = Console()
    with con.status("training and evaluating"):
        path, summary, results = train_classifier(seed, extra, hard_negatives=not no_hard_negatives, C=c,
                                                  threshold=threshold, char_features=not no_char, out=out)
    for name, m in results.items():
        con.print(f"{name:15s} {m.row()}")
    con.print(f"saved {path}  ({summary})")


@relevance_app.command("eval")
def relevance_eval(
    model_dir: Optional[Path] = typer.Option(None, "--model", help="model dir (default: the trained default)"),
    seed: Optional[Path] = typer.Option(None, help="relevance-seed.jsonl"),
    data: list[Path] = typer.Option([], help="extra labelled JSONL to evaluate on (all rows)"),
    threshold: Optional[float] = typer.Option(None, help="override the model threshold"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write metrics as JSON"),
    derived: bool = typer.Option(True, help="include derived hard negatives (Python docs, man pages)"),
) -> None:
    """Precision/recall/F1 on the seed test split, on hard negatives, and on extra files."""
    from rich.console import Console
    from rich.table import Table

    from secfoundry.corpus.process.relevance_jobs import evaluate_classifier

    thr, metrics, errors = evaluate_classifier(model_dir, seed, data, threshold=threshold, derived=derived)
    table = Table(title=f"relevance classifier (threshold {thr})")
    for col in ("set", "n", "P", "R", "F1", "acc", "FPR"):
        table.add_column(col)
    report = {}
    for name, m in metrics.items():
        report[name] = m.__dict__
        report[name + ":errors_by_source"] = errors[name]
        table.add_row(name, str(m.n), f"{m.precision:.4f}", f"{m.recall:.4f}", f"{m.f1:.4f}",
                      f"{m.accuracy:.4f}", f"{m.fpr:.4f}")
    Console().print(table)
    if json_out:
        json_out.write_text(json.dumps(report, indent=2))


@relevance_app.command("label")
def relevance_label(
    input: Path = typer.Argument(..., help="JSONL with a 'text' field"),
    out: Path = typer.Option(..., help="output JSONL with 'label' and 'label_score' added"),
    model: str = typer.Option("smollm2-135m-instruct", help="any spec load_model accepts (embedded SmolLM2, hf:, openai:...)"),
    limit: Optional[int] = typer.Option(None),
    batch: int = typer.Option(8),
) -> None:
    """Bootstrap labels with an LLM (as the Foundation-Sec report did): is this text about security?"""
    from rich.progress import track

    from secfoundry.corpus.process.relevance_jobs import label_with_llm

    n = label_with_llm(input, out, model, limit=limit, batch=batch,
                       progress=lambda r: track(r, description="labelling"))
    typer.echo(f"labelled {n} rows -> {out}")


@app.command("audit-filters")
def audit_filters(
    mirror: Optional[Path] = typer.Option(None, help="source mirror: audit the connectors' documents"),
    input: list[Path] = typer.Option([], help="Parquet file/dir or JSONL of documents"),
    sources: Optional[str] = typer.Option(None, help="comma-separated connector names (default: all)"),
    limit: int = typer.Option(2000, help="documents per connector / per input"),
    seed: bool = typer.Option(False, "--seed-paragraphs", help="also audit relevance-seed security paragraphs"),
    no_relevance: bool = typer.Option(False, help="skip the relevance classifier"),
    out: Optional[Path] = typer.Option(None, help="write the report (.md or .html)"),
) -> None:
    """For each filter, the fraction of each source's documents it would drop."""
    from rich.console import Console

    from secfoundry.core.paths import mirror_dir
    from secfoundry.corpus.process import audit

    mir = mirror_dir(mirror, implicit=False)  # an optional extra input: only when named
    if mir is None and not input and not seed:
        raise typer.BadParameter("give --mirror DIR (or SECFOUNDRY_MIRROR), --input, or --seed-paragraphs")
    with Console().status("auditing filters"):
        res = audit.audit_filters(mir, input, sources.split(",") if sources else None, limit, seed, not no_relevance)
    md = audit.render_markdown(res)
    if out:
        out.write_text(audit.render_html(res) if out.suffix in (".html", ".htm") else md, encoding="utf-8")
    typer.echo(md)


@app.command("extract")
def extract_cmd(
    file: str = typer.Argument(..., help="HTML file ('-' for stdin)"),
    whole_page: bool = typer.Option(False, help="render the whole <body>, no main-content detection"),
    links: bool = typer.Option(False, help="keep links as [text](href)"),
) -> None:
    """HTML → Markdown (code blocks, tables and lists kept), printed to stdout."""
    from secfoundry.core.html import html_to_markdown

    typer.echo(html_to_markdown(_read(file), main_content=not whole_page, keep_links=links).markdown)


@app.command("route")
def route_cmd(file: str = typer.Argument(..., help="text/Markdown file ('-' for stdin)"),
              source: str = typer.Option("", help="source name")) -> None:
    """Content type, prose part, language and keyword score of one document."""
    from secfoundry.corpus.process.contenttype import describe

    typer.echo(json.dumps(describe(_read(file), source), indent=2))


@app.command("pii")
def pii_cmd(file: str = typer.Argument(..., help="text file ('-' for stdin)")) -> None:
    """Print the text with PII replaced by typed placeholders (IOCs kept)."""
    from secfoundry.corpus.process.pii import PIIScrubber

    text, counts = PIIScrubber().scrub(_read(file))
    typer.echo(text)
    typer.echo(json.dumps(dict(counts)), err=True)
