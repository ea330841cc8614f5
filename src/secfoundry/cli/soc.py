"""``secfoundry soc``: SOC acceleration — ingest, detect, triage, cases, timelines, notes (issue #10).

Every command works on one DuckDB store (``--db``, default ``SECFOUNDRY_HOME/soc/soc.duckdb``);
the heavy imports live inside the commands so ``secfoundry --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True, help="SOC: ingest logs, detect with Sigma, triage, build cases, timelines and notes.")

DB = typer.Option(None, "--db", help="DuckDB store (default SECFOUNDRY_HOME/soc/soc.duckdb or SECFOUNDRY_SOC_DB)")
KB = typer.Option(None, "--kb", help="knowledge base dir (default SECFOUNDRY_KB or SECFOUNDRY_HOME/kb)")


def _store(db: Optional[Path]):
    from secfoundry.apps.soc.store import Store

    return Store(db)


def _kb(kb: Optional[Path]):
    from secfoundry.apps.soc.pipeline import open_kb

    k = open_kb(kb)
    if k is None:
        typer.echo("note: no knowledge base found; Sigma rules need --rules, enrichment is minimal", err=True)
    return k


@app.command()
def ingest(files: list[str] = typer.Argument(..., help="files, directories, .zip/.gz archives, .evtx, or - for stdin"),
           db: Optional[Path] = DB, as_json: bool = typer.Option(False, "--json")) -> None:
    """Read logs/alerts (format detected per record) into the store; re-ingesting adds nothing."""
    from secfoundry.apps.soc.ingest import ingest as run

    with _store(db) as store:
        rep = run(files, store)
        if as_json:
            typer.echo(rep.model_dump_json(indent=1))
            return
        for f in rep.files:
            typer.echo(f"{f.file}: {f.format} read {f.read}, new {f.inserted}, duplicates {f.duplicates}, "
                       f"errors {f.errors}, no timestamp {f.missing_timestamps}")
            for n in f.skew_notes:
                typer.echo(f"  clock: {n}")
        for e in rep.errors[:20]:
            typer.echo(f"  error {e.file}:{e.line}: {e.error}", err=True)
        if rep.error_count > 20:
            typer.echo(f"  ... {rep.error_count - 20} more errors (table ingest_errors in {store.path})", err=True)
        typer.echo(f"{rep.read} events read, {rep.inserted} new, {rep.duplicates} duplicates, {rep.error_count} "
                   f"errors in {rep.seconds:.1f}s ({store.count()} in {store.path})")


@app.command()
def detect(db: Optional[Path] = DB, kb: Optional[Path] = KB,
           rules: Optional[str] = typer.Option(None, "--rules", help="Sigma rules dir or .tar.gz (default: the KB's)"),
           hunting: bool = typer.Option(False, "--hunting", help="also run rules-threat-hunting/"),
           no_sigma: bool = typer.Option(False, "--no-sigma", help="native alerts only")) -> None:
    """Run the KB's Sigma rules over the store and collect native Suricata/Zeek/Wazuh alerts."""
    from secfoundry.apps.soc.pipeline import detect_stage

    with _store(db) as store:
        alerts, rep, _ = detect_stage(store, _kb(kb), rules=rules, hunting=hunting, sigma=not no_sigma)
        typer.echo(f"Sigma: {rep.rules_run} rules run, {rep.rules_without_events} without events in the store, "
                   f"{rep.rules_failed} failed, skipped {rep.skipped}; {rep.hits} hits in {rep.seconds:.1f}s")
        for f in rep.failures[:10]:
            typer.echo(f"  failed: {f}", err=True)
        typer.echo(f"{len(alerts)} alerts ({rep.sigma_alerts} Sigma, {rep.native_alerts} native)")


@app.command()
def triage(db: Optional[Path] = DB, kb: Optional[Path] = KB,
           llm: Optional[str] = typer.Option(None, "--llm", help="model spec to refine ambiguous alerts"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Enrich, score and explain every alert (run after detect)."""
    from secfoundry.apps.soc.pipeline import load_model, stored_alerts
    from secfoundry.apps.soc.triage import triage as run

    with _store(db) as store:
        alerts = stored_alerts(store)
        out = run(store, alerts, kb=_kb(kb), llm=load_model(llm))
        by = {a.alert_id: a for a in alerts}
        if as_json:
            typer.echo(json.dumps([t.model_dump(mode="json") for t in out], indent=1))
            return
        for t in sorted(out, key=lambda t: -t.score):
            typer.echo(f"{t.alert_id} {t.severity:<13} {t.verdict:<15} {t.score:.2f} {by[t.alert_id].rule_name[:60]} "
                       f"— {t.reason}")


@app.command()
def cases(db: Optional[Path] = DB, kb: Optional[Path] = KB,
          window: int = typer.Option(120, "--window", help="minutes within which shared entities link alerts"),
          min_score: float = typer.Option(0.35, "--min-score", help="alerts at or below this score open no case"),
          llm: Optional[str] = typer.Option(None, "--llm", help="model spec for case notes"),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Group triaged alerts into cases (with timeline and notes)."""
    from secfoundry.apps.soc.pipeline import case_stage, load_model, stored_alerts, stored_triage

    with _store(db) as store:
        alerts, tri = stored_alerts(store), stored_triage(store)
        if alerts and not tri:
            raise typer.BadParameter("no triage in the store: run `secfoundry soc triage` first")
        out = case_stage(store, alerts, tri, _kb(kb), window_min=window, min_score=min_score, model=load_model(llm))
        if as_json:
            typer.echo(json.dumps([c.model_dump(mode="json", exclude={"timeline", "notes"}) for c in out], indent=1))
            return
        for c in out:
            typer.echo(f"{c.id} {c.severity:<8} {c.score:.2f} alerts={len(c.alerts)} {','.join(c.techniques[:6])} "
                       f"{c.title[:80]}")
            for g in c.grouping[:3]:
                typer.echo(f"    {g}")


@app.command()
def timeline(case: str = typer.Argument(..., help="case id (or a unique prefix/suffix)"), db: Optional[Path] = DB,
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Print a case's UTC timeline, one line per (deduplicated) event with its event ids."""
    from secfoundry.apps.soc.pipeline import find_case

    with _store(db) as store:
        c = find_case(store, case)
        if as_json:
            typer.echo(json.dumps([t.model_dump(mode="json") for t in c.timeline], indent=1))
            return
        for t in c.timeline:
            mark = "*" if t.alert_ids else " "
            typer.echo(f"{mark} {t.time or '(no time)'} {t.host:<16} {t.summary[:150]}  [{','.join(t.event_ids)}]")


@app.command()
def notes(case: str = typer.Argument(...), db: Optional[Path] = DB,
          fmt: str = typer.Option("md", "--format", help="md | json")) -> None:
    """Print a case's notes (Markdown or JSON)."""
    from secfoundry.apps.soc.pipeline import find_case

    if fmt not in ("md", "json"):
        raise typer.BadParameter("--format must be md or json")
    with _store(db) as store:
        c = find_case(store, case)
        if c.notes is None:
            raise typer.BadParameter(f"case {c.id} has no notes; run `secfoundry soc cases`")
        typer.echo(c.notes.markdown if fmt == "md" else c.notes.model_dump_json(indent=1))


@app.command()
def run(files: list[str] = typer.Argument(..., help="inputs as they come (zip/gz/evtx/json/tsv, dirs, -)"),
        out: Path = typer.Option(..., "--out", help="output directory"), db: Optional[Path] = DB,
        kb: Optional[Path] = KB, rules: Optional[str] = typer.Option(None, "--rules"),
        hunting: bool = typer.Option(False, "--hunting"), llm: Optional[str] = typer.Option(None, "--llm"),
        window: int = typer.Option(120, "--window"), min_score: float = typer.Option(0.35, "--min-score"),
        fresh: bool = typer.Option(False, "--fresh", help="start from an empty store")) -> None:
    """Ingest, detect, triage, build cases; write OUT/cases.json and an HTML report per case."""
    from secfoundry.apps.soc.pipeline import run as run_all

    s = run_all(files, out, kb=_kb(kb), db=str(db) if db else None, rules=rules, hunting=hunting, llm=llm,
                window_min=window, min_score=min_score, fresh=fresh)
    for k, v in s.items():
        typer.echo(f"{k}: {v}")
    typer.echo(f"wrote {out / 'cases.json'} and {out / 'index.html'}")
