"""`secfoundry eval run` and `secfoundry eval report` (registered on ``secfoundry.eval.cli.app``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from secfoundry.eval.cli import app


@app.command("run")
def run_cmd(
    model: str = typer.Option("smollm2-135m-instruct", "--model", "-m",
                              help="Model spec: hf:ID|PATH, openai:URL#model, llamacpp:PATH, or an alias."),
    benchmark: str = typer.Option(..., "--benchmark", "-b",
                                  help="Comma-separated benchmarks, families (ctibench) or groups "
                                       "(quickstart: a slice of every locally available benchmark; all)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (config.json, results.json, samples.jsonl)."),
    protocol: str = typer.Option("faith", "--protocol", help="official | faith"),
    mode: str = typer.Option("generate", "--mode", help="generate | logprob (answer-letter log-probabilities)"),
    shots: Optional[int] = typer.Option(None, "--shots",
                                        help="Few-shot examples (default: faith 5 for base models, else 0)."),
    trials: int = typer.Option(1, "--trials", min=1, help="Independent trials (new shots and seed each)."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Score only the first N items per benchmark."),
    seed: int = typer.Option(1234, "--seed"),
    permute: bool = typer.Option(False, "--permute", help="Also ask each MCQ with rotated options."),
    score_options: bool = typer.Option(False, "--score-options",
                                       help="logprob mode: score option texts instead of letters."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir",
                                            help="Local benchmark copy (default SECFOUNDRY_DATA or ../shared/data/benchmarks)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    instruct: Optional[bool] = typer.Option(None, "--instruct/--base",
                                            help="Treat the model as instruct/base (default: detected from its chat template)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1),
    fresh: bool = typer.Option(False, "--fresh", help="Discard samples already in --out instead of resuming."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for local backends."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="hf backend dtype (bf16 default on CPU)."),
) -> None:
    """Evaluate a model; resumes from DIR/samples.jsonl when interrupted."""
    from rich.console import Console

    from secfoundry.core.errors import InputError
    from secfoundry.eval.runner import RunConfig, run_eval

    console = Console(stderr=True)
    if protocol not in ("official", "faith"):
        raise typer.BadParameter("must be official or faith", param_hint="--protocol")
    if mode not in ("generate", "logprob"):
        raise typer.BadParameter("must be generate or logprob", param_hint="--mode")
    cfg = RunConfig(model=model, benchmarks=[b for b in benchmark.split(",") if b.strip()], out=out,
                    protocol=protocol, mode=mode, shots=shots, trials=trials, temperature=temperature,
                    limit=limit, seed=seed, permute=permute, score_options=score_options, data_dir=data_dir,
                    batch_size=batch_size, instruct=instruct, max_new_tokens=max_new_tokens, fresh=fresh,
                    model_options={k: v for k, v in (("threads", threads), ("dtype", dtype)) if v is not None})
    progress = RichProgress(console)
    try:
        with progress:
            outcome = run_eval(cfg, progress=progress, argv=["secfoundry"] + sys.argv[1:])
    except InputError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/yellow]: answers so far are in {out}/samples.jsonl; "
                      "rerun the same command to resume")
        raise typer.Exit(130) from None
    console.print(summary_table(outcome.results, title=f"{cfg.model} · {cfg.protocol} · {cfg.mode}"))
    console.print(f"wrote {out}/config.json, results.json, samples.jsonl")


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


class RichProgress:
    """Rich progress bars for the runner: one bar per benchmark."""

    def __init__(self, console):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._p = Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                           console=console, transient=False)
        self._ids: dict[str, int] = {}

    def __enter__(self):
        self._p.__enter__()
        return self

    def __exit__(self, *exc):
        return self._p.__exit__(*exc)

    def start(self, benchmark: str, total: int, done: int) -> None:
        import time

        self._ids[benchmark] = self._p.add_task(benchmark, total=total, completed=done, rate="")
        self._t0 = time.perf_counter()
        self._done0 = done

    def advance(self, benchmark: str, n: int) -> None:
        import time

        tid = self._ids[benchmark]
        self._p.advance(tid, n)
        done = self._p.tasks[tid].completed - self._done0
        dt = time.perf_counter() - self._t0
        self._p.update(tid, rate=f"{done / dt:.1f} req/s" if dt > 0 else "")

    def note(self, benchmark: str, message: str) -> None:
        self._p.console.print(f"[yellow]{benchmark}[/yellow]: {message}")

    def finish(self, benchmark: str) -> None:
        tid = self._ids[benchmark]
        self._p.update(tid, completed=self._p.tasks[tid].total)


def summary_table(results: dict, title: str = ""):
    from rich.table import Table

    from secfoundry.eval.report import fmt_score

    t = Table(title=title)
    t.add_column("benchmark", no_wrap=True)
    t.add_column("metric")
    for col in ("score", "95% CI / ±std", "n", "valid", "fail", "time"):
        t.add_column(col, justify="right", no_wrap=col != "95% CI / ±std")
    for name, r in results.items():
        ci = r.get("ci95")
        spread = f"± {fmt_score(r['score_std'])}" if r.get("score_std") is not None else (
            f"{fmt_score(ci[0])}–{fmt_score(ci[1])}" if ci else "")
        metric = str(r.get("headline", "")) + (" ↑" if r.get("higher_is_better", True) else " ↓")
        if r.get("mode_fallback"):
            metric += " (gen)"
        t.add_row(name, metric, fmt_score(r.get("score")), spread, str(r.get("n", "")),
                  str(r.get("n_valid", "")), str(r.get("parse_failures", "")), f"{r.get('elapsed_s', 0):.0f}s")
    return t
