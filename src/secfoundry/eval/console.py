"""Rich rendering for eval runs: one progress bar per benchmark and the summary table."""

from __future__ import annotations


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


def score_table(result: dict, column: str, protocol: str):
    """``eval score``'s result as a metric/value table."""
    import json

    from rich.table import Table

    t = Table(title=f"{result['benchmark']} · {column} · {protocol}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in result.items():
        if k in ("predictions", "column", "benchmark", "protocol"):
            continue
        t.add_row(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v))
    return t
