"""``secfoundry review``: configuration review, secure-code review, compliance mapping (issue #11)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(no_args_is_help=True, help="Engineering review: configs, code, compliance mapping.")

_FMT = typer.Option("markdown", "--format", "-f", help="sarif | json | markdown")
_OUT = typer.Option(None, "--out", "-o", help="write here instead of stdout")
_FAIL = typer.Option("never", "--fail-on", help="exit 1 if a finding is at or above: info|low|medium|high|critical|never")
_LLM = typer.Option(None, "--llm", help="model spec for the confirm/catch pass (e.g. smollm2-135m-instruct)")
_KB = typer.Option(None, "--kb", help="knowledge base folder or kb.sqlite (default SECFOUNDRY_HOME/kb)")
_ENG = typer.Option(None, "--engine", help="restrict to these engines (repeatable)")


def _run(kind: str, paths: List[Path], fmt: str, out: Optional[Path], fail_on: str, llm: Optional[str],
         kb_path: Optional[Path], engines: Optional[List[str]], max_bytes: int, jobs: int) -> None:
    from secfoundry.apps.review.kbmap import KBMap
    from secfoundry.apps.review.render import gate, render
    from secfoundry.apps.review.review import review_code, review_config
    from secfoundry.apps.review.schemas import ReviewRequest

    if fmt not in ("sarif", "json", "markdown", "md"):
        raise typer.BadParameter(f"--format {fmt!r}: choose sarif, json or markdown")
    req = ReviewRequest(kind=kind, paths=[str(p) for p in paths], llm=llm, engines=engines or None,
                        max_file_bytes=max_bytes, jobs=jobs)
    kb = KBMap.open(kb_path)
    result = (review_code if kind == "code" else review_config)(req, kb=kb)
    text = render(result, fmt)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    else:
        typer.echo(text)
    shown = [f for f in result.findings if f.llm_verdict != "rejected"]
    typer.echo(f"{result.files_reviewed} files reviewed, {len(shown)} findings, {len(result.skipped)} skipped"
               + (f" -> {out}" if out else ""), err=True)
    for s in result.skipped[:20]:
        typer.echo(f"  skipped {s.path}: {s.reason}", err=True)
    for n in result.notes:
        typer.echo(f"  note: {n}", err=True)
    raise typer.Exit(gate(result, fail_on))


@app.command("code")
def code(paths: List[Path] = typer.Argument(..., help="source files or folders"), fmt: str = _FMT,
         out: Optional[Path] = _OUT, fail_on: str = _FAIL, llm: Optional[str] = _LLM, kb: Optional[Path] = _KB,
         engine: Optional[List[str]] = _ENG, max_bytes: int = typer.Option(2_000_000, help="skip larger files"),
         jobs: int = typer.Option(2, "--jobs", "-j")) -> None:
    """Secure-code review (Python, JS/TS, Java, Go, C): bandit + shipped semgrep rules, mapped to
    CWE / NIST 800-53 with fixes from the KB."""
    _run("code", paths, fmt, out, fail_on, llm, kb, engine, max_bytes, jobs)


@app.command("config")
def config(paths: List[Path] = typer.Argument(..., help="config files or folders"), fmt: str = _FMT,
           out: Optional[Path] = _OUT, fail_on: str = _FAIL, llm: Optional[str] = _LLM, kb: Optional[Path] = _KB,
           engine: Optional[List[str]] = _ENG, max_bytes: int = typer.Option(2_000_000, help="skip larger files"),
           jobs: int = typer.Option(2, "--jobs", "-j")) -> None:
    """Configuration review: Dockerfile, Kubernetes, Terraform (checkov), nginx (gixy-ng), sshd/sysctl/
    sudoers/Apache (ComplianceAsCode rules from the KB), docker-compose."""
    _run("config", paths, fmt, out, fail_on, llm, kb, engine, max_bytes, jobs)


@app.command("engines")
def engines_cmd(install: bool = typer.Option(False, "--install", help="create the isolated checkov/semgrep venvs"),
                dest: Optional[Path] = typer.Option(None, help="where (default: repo .venv-tools)")) -> None:
    """Show which review engines are available (and install the isolated ones)."""
    from secfoundry.apps.review import engines as eng

    if install:
        for p in eng.install(list(eng.ISOLATED), dest):
            typer.echo(f"installed {p}")
    for name in ("checkov", "semgrep", "bandit", "gixy"):
        e = eng.find(name)
        typer.echo(f"{name:8s} {'ok ' + e.version if e else 'not installed'}")
        if name == "semgrep" and e:
            from secfoundry.apps.review.semgrep_core import find_core

            core = find_core(e)
            typer.echo(f"{'':8s} engine: {core if core else 'semgrep-core not found: semgrep scan (slower)'}")


@app.command("validate-sarif")
def validate_sarif(path: Path) -> None:
    """Validate a SARIF file against the SARIF 2.1.0 JSON schema (and properties.cwe/location)."""
    import json

    from secfoundry.apps.review.sarif import validate

    errors = validate(json.loads(path.read_text(encoding="utf-8")))
    for e in errors[:50]:
        typer.echo(e, err=True)
    typer.echo(f"{path}: {'valid' if not errors else f'{len(errors)} error(s)'}")
    raise typer.Exit(1 if errors else 0)


@app.command("compliance")
def compliance(findings: Optional[List[Path]] = typer.Option(None, "--findings", help="review JSON or SARIF from any scanner (repeatable)"),
               techniques: Optional[str] = typer.Option(None, "--techniques", help="ATT&CK ids, comma-separated (T1059.001,T1003)"),
               techniques_file: Optional[Path] = typer.Option(None, "--techniques-file", help="any text/JSON holding technique ids (e.g. intel extract-ttps output)"),
               baseline: Optional[Path] = typer.Option(None, "--baseline", help="file listing the controls you implement (gaps are reported against it)"),
               fmt: str = typer.Option("markdown", "--format", "-f", help="markdown | html | json | csv"),
               out: Optional[Path] = _OUT, kb: Optional[Path] = _KB,
               fail_on_gap: bool = typer.Option(False, "--fail-on-gap", help="exit 1 when a failing or gap control exists")) -> None:
    """Map findings and/or ATT&CK techniques to NIST SP 800-53 rev5 controls: coverage report."""
    from secfoundry.apps.review import compliance as comp
    from secfoundry.apps.review.kbmap import KBMap
    from secfoundry.apps.review.schemas import ComplianceRequest

    kbm = KBMap.open(kb)
    if not kbm.available:
        typer.echo("error: no knowledge base (secfoundry kb sync, or --kb PATH): controls come from it", err=True)
        raise typer.Exit(2)
    fs = []
    for p in findings or []:
        try:
            fs += comp.load_findings(p)
        except (OSError, ValueError) as e:
            typer.echo(f"skipped {p}: {e}", err=True)
    techs = comp.parse_ids(techniques or "")
    if techniques_file:
        techs += [t for t in comp.parse_ids(techniques_file.read_text(encoding="utf-8", errors="replace")) if t not in techs]
    if not fs and not techs:
        raise typer.BadParameter("give --findings and/or --techniques/--techniques-file")
    base = comp.parse_controls(baseline.read_text(encoding="utf-8")) if baseline else None
    rep = comp.assess(ComplianceRequest(findings=fs, techniques=techs, baseline=base), kbm)
    text = comp.render(rep, fmt)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    else:
        typer.echo(text)
    counts = {}
    for c in rep.controls:
        counts[c.status] = counts.get(c.status, 0) + 1
    typer.echo(f"{len(fs)} findings, {len(techs)} techniques -> {len(rep.controls)} controls {counts}; "
               f"{len(rep.unmapped)} unmapped" + (f" -> {out}" if out else ""), err=True)
    raise typer.Exit(1 if fail_on_gap and (counts.get("failing") or counts.get("gap")) else 0)
