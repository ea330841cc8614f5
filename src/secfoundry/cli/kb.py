"""``secfoundry kb``: sync, status, show, search, validate (presentation only; the work is in ``secfoundry.kb``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(no_args_is_help=True)

DbOpt = typer.Option(None, "--db", help="Knowledge-base directory (or .sqlite file); default SECFOUNDRY_HOME/kb.")


def _console() -> Any:
    from rich.console import Console

    return Console()


def _kb(db: Optional[Path], embedder: Optional[str] = None) -> Any:
    from secfoundry.kb import KnowledgeBase

    return KnowledgeBase.open(db, embedder=embedder)


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


class _RichProgress:
    """Draws sync progress: one bar per source (records parsed), one for embedding."""

    def __init__(self, progress: Any):
        self.p = progress
        self.tasks: dict[str, Any] = {}

    def source_start(self, name: str, expected: int | None) -> None:
        self.tasks[name] = self.p.add_task(f"{name}", total=expected)

    def source_records(self, name: str, n: int) -> None:
        if name in self.tasks:
            task = self.tasks[name]
            total = self.p.tasks[task].total if task < len(self.p.tasks) else None
            self.p.update(task, completed=n, total=max(total or 0, n) if total else None)

    def source_end(self, result: Any) -> None:
        task = self.tasks.get(result.name)
        if task is not None:
            self.p.update(task, total=max(result.records, 1), completed=max(result.records, 1),
                          description=f"{result.name} [{result.status}]")

    def render(self, done: int, total: int) -> None:
        if "__render" not in self.tasks:
            self.tasks["__render"] = self.p.add_task("rendering entries", total=max(total, 1))
        self.p.update(self.tasks["__render"], completed=done, total=max(total, 1))

    def embed(self, done: int, total: int) -> None:
        if "__embed" not in self.tasks:
            self.tasks["__embed"] = self.p.add_task("embedding", total=max(total, 1))
        self.p.update(self.tasks["__embed"], completed=done if total else 1, total=max(total, 1))


@app.command()
def sync(
    mirror: Optional[Path] = typer.Option(None, "--mirror", help="Read sources from this mirror dir (else "
                                          "SECFOUNDRY_MIRROR, else ../shared/data/mirror in a checkout, else download)."),
    sources: Optional[str] = typer.Option(None, "--sources", help="Comma-separated source names (default: all)."),
    db: Optional[Path] = DbOpt,
    force: bool = typer.Option(False, "--force", help="Re-sync sources even when unchanged."),
    dense: bool = typer.Option(True, "--dense/--no-dense", help="Build/refresh the dense index."),
    embed_passages: bool = typer.Option(False, "--embed-passages", help="Also embed procedure/observed "
                                        "examples (slow on CPU)."),
    embedder: Optional[str] = typer.Option(None, "--embedder", help="minilm (default) or hashing."),
    render: bool = typer.Option(True, "--render/--no-render", help="Materialise every entry's `kb show` JSON "
                                "(fast first look-ups in the service; ~11 CPU-s for the full KB)."),
    as_json: bool = typer.Option(False, "--json", help="Print the sync report as JSON."),
) -> None:
    """Sync sources into the knowledge base (incremental, resumable) and build the dense index."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from secfoundry.core.errors import InputError
    from secfoundry.kb.dense import DensePolicy

    kb = _kb(db, embedder)
    console = _console()
    policy = DensePolicy(passages=embed_passages)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=as_json, transient=False) as prog:
            report = kb.sync(mirror=mirror, sources=sources, force=force, dense=dense, policy=policy,
                             progress=_RichProgress(prog), render=render)
    except (InputError, RuntimeError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    if as_json:
        _echo_json(report.to_dict())
        raise typer.Exit(1 if report.failed else 0)
    if report.resumed:
        console.print(f"[yellow]resumed unfinished sync run {report.run_id}[/yellow]")
    t = Table(title=f"kb sync ({report.seconds:.1f} s) -> {kb.paths.db}")
    for col in ("source", "status", "version", "records", "relations", "passages", "quarantined", "seconds"):
        t.add_column(col, justify="right" if col in ("records", "relations", "passages", "quarantined", "seconds")
                     else "left")
    style = {"synced": "green", "unchanged": "dim", "resumed": "cyan", "failed": "red", "unavailable": "yellow"}
    for r in report.results:
        t.add_row(r.name, f"[{style.get(r.status, '')}]{r.status}[/]", r.version, str(r.records), str(r.relations),
                  str(r.passages), str(r.quarantined), f"{r.seconds:.1f}")
    console.print(t)
    for r in report.results:
        if r.status in ("failed", "unavailable"):
            console.print(f"[{style[r.status]}]{r.name} {r.status}:[/] {r.error}")
    if report.dense:
        d = report.dense
        console.print(f"dense index: {d.entries} vectors ({d.embedded} embedded, {d.cached} cached) with {d.model} "
                      f"in {d.seconds:.1f} s; not embedded (BM25 only): "
                      + (", ".join(f"{k} {v}" for k, v in sorted(d.skipped_types.items())) or "none"))
    elif report.dense_error:
        console.print(f"[red]dense index not rebuilt:[/red] {report.dense_error} (lexical search still works)")
    if report.rendered and not report.rendered.skipped:
        r = report.rendered
        console.print(f"rendered entries: {r.ids} ids, {r.bytes_stored / 1e6:.1f} MB stored "
                      f"({r.bytes_json / 1e6:.1f} MB JSON) in {r.seconds:.1f} s")
    if report.quarantine:
        console.print(f"[yellow]{len(report.quarantine)} quarantined entries[/yellow] (details in {kb.paths.quarantine}/):")
        for item in report.quarantine[:20]:
            console.print(f"  {item['source']}: {item['file']} [{item['entry']}]: {item['error']}")
        if len(report.quarantine) > 20:
            console.print(f"  ... and {len(report.quarantine) - 20} more")
    raise typer.Exit(1 if report.failed else 0)


@app.command()
def render(db: Optional[Path] = DbOpt,
           force: bool = typer.Option(False, "--force", help="Re-render even when the stored entries are current.")
           ) -> None:
    """Materialise every entry's `kb show` JSON (sync does this; for a KB synced without it)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    kb = _kb(db)
    console = _console()
    if not kb.paths.db.exists() or not kb.store.sources():
        console.print(f"[red]error:[/red] no synced knowledge base at {kb.paths.db}: run `secfoundry kb sync` first")
        raise typer.Exit(2)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as prog:
        r = kb.render(force=force, progress=_RichProgress(prog).render)
    if r.skipped:
        console.print("rendered entries are current (use --force to redo)")
    else:
        console.print(f"rendered {r.ids} ids: {r.bytes_stored / 1e6:.1f} MB stored ({r.bytes_json / 1e6:.1f} MB JSON) "
                      f"in {r.seconds:.1f} s")


@app.command()
def status(db: Optional[Path] = DbOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Sources, versions, counts and last sync of the knowledge base."""
    from rich.table import Table

    kb = _kb(db)
    st = kb.status()
    if as_json:
        _echo_json(st.to_dict())
        return
    console = _console()
    t = Table(title=f"knowledge base {st.path}")
    for col in ("source", "version", "records", "relations", "passages", "quarantined", "status", "last sync",
                "origin"):
        t.add_column(col)
    for s in st.sources:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.last_sync)) if s.last_sync else "-"
        status_txt = s.status + (f": {s.error[:60]}" if s.error else "")
        t.add_row(s.name, s.version, str(s.records), str(s.relations), str(s.passages), str(s.quarantined),
                  status_txt, when, s.origin)
    console.print(t)
    c = st.counts
    console.print(f"{c['records']} records, {c['ids']} distinct ids, {c['relations']} relations, "
                  f"{c['passages']} passages; dense index: {st.dense.get('state')} "
                  f"{st.dense.get('rows', 0)} vectors {st.dense.get('model', '')}")
    if not st.sources:
        console.print("empty: run `secfoundry kb sync --mirror DIR` (or without --mirror to download)")


def _render_entry(console: Any, e: Any, limit: int) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    flags = []
    if e.revoked:
        flags.append("[red]REVOKED[/red]")
    if e.deprecated:
        flags.append("[yellow]DEPRECATED[/yellow]")
    if e.replaced_by:
        flags.append(f"-> use [bold]{e.replaced_by}[/bold]")
    head = f"[bold]{e.id}[/bold] {e.name}  [dim]{e.type}[/dim] " + " ".join(flags)
    from secfoundry.kb.text import readable

    desc = readable(e.description)
    body = Text(desc[:2500] + (" ..." if len(desc) > 2500 else ""))
    meta = [f"sources: {', '.join(f'{s.source} {s.version}'.strip() for s in e.sources) or '-'}"]
    if e.url:
        meta.append(f"url: {e.url}")
    if e.aliases:
        meta.append(f"aliases: {', '.join(e.aliases[:20])}")
    if e.query:
        meta.append(f"(looked up as {e.query!r})")
    console.print(head)  # outside the panel: a panel title would be cut at the terminal width
    console.print(Panel(body, subtitle="  ".join(meta[:1])))
    for line in meta[1:]:
        console.print(f"[dim]{line}[/dim]")
    if e.kev:
        k = e.kev
        console.print(Panel(
            f"in CISA KEV since {k.get('date_added') or k.get('dateAdded', '?')}; due {k.get('due_date') or k.get('dueDate', '-')}; "
            f"ransomware: {k.get('known_ransomware_campaign_use') or k.get('knownRansomwareCampaignUse', '-')}\n"
            f"{k.get('required_action') or k.get('requiredAction', '')}", title="[red]Known Exploited[/red]",
            title_align="left"))
    if e.epss:
        console.print(f"EPSS: {e.epss.get('epss')} (percentile {e.epss.get('percentile')}) scored "
                      f"{e.epss.get('score_date', '')}, model {e.epss.get('model_version', '')}")
    for section, refs in e.sections.items():
        t = Table(title=f"{section.replace('_', ' ')} ({len(refs)})", title_justify="left", show_header=False,
                  box=None, pad_edge=False)
        t.add_column("id", style="bold", no_wrap=True)
        t.add_column("name")
        t.add_column("note", style="dim")
        for r in refs[:limit]:
            t.add_row(r.id, r.name or f"[dim]{r.type or r.relation}[/dim]", r.note[:160])
        if len(refs) > limit:
            t.add_row("...", f"{len(refs) - limit} more (--all or --json)", "")
        console.print(t)


@app.command()
def show(
    id: str = typer.Argument(..., help="T1059.001 | CWE-79 | CAPEC-66 | CVE-2024-3400 | D3-AL | AC-2 | alias"),
    db: Optional[Path] = DbOpt,
    as_json: bool = typer.Option(False, "--json"),
    all_: bool = typer.Option(False, "--all", help="List every related item (default: 15 per section)."),
) -> None:
    """Everything the knowledge base knows about one id, merged across sources."""
    kb = _kb(db)
    entry = kb.show(id)
    if entry is None:
        from secfoundry.kb import ids as idmod

        check = idmod.validate(id)
        msg = f"{id!r} is not in the knowledge base" + ("" if check.syntax_ok else " (and is not a known id form)")
        if as_json:
            _echo_json({"error": msg, "id": check.canonical})
        else:
            _console().print(f"[red]{msg}[/red]")
        raise typer.Exit(1)
    if as_json:
        _echo_json(entry.to_dict())
        return
    _render_entry(_console(), entry, 10**9 if all_ else 15)


@app.command()
def search(
    query: str = typer.Argument(...),
    type_: Optional[str] = typer.Option(None, "--type", "-t", help="Record type(s): technique, cwe, capec, cve, "
                                        "sigma, atomic, d3fend, control, ... (comma-separated)."),
    k: int = typer.Option(10, "--k", "-k"),
    db: Optional[Path] = DbOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Hybrid search (BM25 + all-MiniLM-L6-v2, reciprocal rank fusion).

    QUERY "-" reads one query per line from stdin and prints one JSON line per query, with the
    model loaded once (for scripts and batch lookups).
    """
    from rich.table import Table

    kb = _kb(db)
    if query == "-":
        import sys

        kb.warm()
        for line in sys.stdin:
            if line.strip():
                t1 = time.perf_counter()
                hits = kb.search(line.strip(), type=type_, k=k)
                typer.echo(json.dumps({"query": line.strip(), "ms": round((time.perf_counter() - t1) * 1000, 2),
                                       "hits": [h.to_dict() for h in hits]}, ensure_ascii=False))
        return
    t0 = time.perf_counter()
    hits = kb.search(query, type=type_, k=k)
    ms = (time.perf_counter() - t0) * 1000
    if as_json:
        _echo_json([h.to_dict() for h in hits])
        return
    t = Table(title=f"{query!r}" + (f" type={type_}" if type_ else "") + f" ({ms:.0f} ms incl. model load)")
    for col in ("#", "id", "type", "name", "lanes", "why"):
        t.add_column(col)
    for i, h in enumerate(hits, 1):
        lanes = " ".join(f"{lane}:{r}" for lane, r in h.ranks.items())
        why = h.evidence or h.snippet
        t.add_row(str(i), h.id, h.type, h.name, lanes, why[:140])
    _console().print(t)
    if not hits:
        _console().print("no results (is the knowledge base synced? `secfoundry kb status`)")


@app.command()
def validate(
    ids_: list[str] = typer.Argument(..., metavar="ID..."),
    db: Optional[Path] = DbOpt,
    offline: bool = typer.Option(False, "--syntax-only", help="Check spelling only; do not open the KB."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Normalise ids and resolve revoked/deprecated ones to their replacements."""
    from secfoundry.kb import ids as idmod

    kb = None if offline else _kb(db)
    checks = [idmod.validate(i, kb) for i in ids_]
    if as_json:
        _echo_json([c.to_dict() for c in checks])
    else:
        from rich.table import Table

        t = Table()
        for col in ("input", "canonical", "kind", "known", "state", "use"):
            t.add_column(col)
        for c in checks:
            state = "revoked" if c.revoked else "deprecated" if c.deprecated else ("ok" if c.known else "")
            t.add_row(c.input, c.canonical or "[red]invalid[/red]", c.kind or "", str(c.known) if c.known is not None
                      else "-", state, c.current or "")
        _console().print(t)
    bad = [c for c in checks if not c.syntax_ok or c.known is False]
    raise typer.Exit(1 if bad else 0)
