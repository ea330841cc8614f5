"""``secfoundry intel``: threat-intelligence and vulnerability applications (issue #12)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Threat intel and vulnerabilities: map-cwe, predict-cvss, extract-ttps, prioritize, emulate.")


# -- map-cwe / predict-cvss (issue #12, first half; logic in apps/intel/batch.py) ------------------------
# parameters shared by map-cwe, predict-cvss and fit
_CVE_TEXT = typer.Argument(None, help="A CVE description, a CVE id (looked up) or a CVE JSON 5 file.")
_CVE_INPUT = typer.Option(None, "--input", help="CVES.jsonl[.gz]: lines with description (and id).")
_RECORDS = typer.Option(None, "--records", help="Labelled CVE records (default: shared cve-records).")


def _single_or_batch(kind: str, text: str | None, input: str | None, out: str | None, llm: str | None,
                     evidence: bool, records: str | None, level: str = "nvd", convention: str = "cna") -> None:
    import json
    from functools import partial

    from secfoundry.apps.intel import batch
    from secfoundry.core.errors import InputError

    if bool(text) == bool(input):
        _fail(ValueError("give either TEXT (a description, CVE id or CVE JSON 5 file) or --input FILE"))
    try:
        if kind == "cwe":
            from secfoundry.apps.intel.cwe_map import CweMapper

            engine = CweMapper(llm=llm, records=records, level=level)
            predict, to_line = engine.map_many, partial(batch.cwe_line, evidence=evidence)
        else:
            from secfoundry.apps.intel.cvss_predict import CvssPredictor

            engine = CvssPredictor(records=records, convention=convention)
            predict, to_line = engine.predict_many, partial(batch.cvss_line, evidence=evidence)
        if input:
            if not out:
                _fail(ValueError("--input needs --out PRED.jsonl"))
            res = batch.run_batch(input, out, predict, to_line)
            for e in res.errors:
                typer.echo(f"skipped: {e}", err=True)
            typer.echo(f"{res.written} predictions -> {out}; {len(res.errors)} bad row(s) skipped; "
                       f"{res.excluded} index rows excluded by the leakage rule", err=True)
            if res.written == 0 and res.errors:
                raise typer.Exit(1)
            return
        item, recorded = batch.resolve_single(text, records=records)
        pred = predict([item])[0]
    except (InputError, ValueError, OSError) as e:
        _fail(e)
    line = to_line(pred, evidence=True)
    if recorded:
        line["recorded"] = recorded
    typer.echo(json.dumps(line, indent=1, ensure_ascii=False))


@app.command("map-cwe")
def map_cwe_cmd(
    text: str = _CVE_TEXT,
    input: str = _CVE_INPUT,
    out: str = typer.Option(None, "--out", help="PRED.jsonl: one {id, cwe: [ranked ids], ...} per line."),
    llm: str = typer.Option(None, "--llm", help="Model spec of an LLM that reranks the top candidates."),
    evidence: bool = typer.Option(False, "--evidence", help="Batch: include candidates with evidence."),
    records: str = _RECORDS,
    level: str = typer.Option("nvd", "--level", help="nvd: prefer NVD's mapping level (view 1003) | cna: as labelled."),
) -> None:
    """Map a CVE description to ranked CWE ids (KB-validated) with scores and evidence."""
    _single_or_batch("cwe", text, input, out, llm, evidence, records, level)


@app.command("fit")
def fit_cmd(
    records: str = _RECORDS,
    published_before: str = typer.Option(None, "--published-before", help="Fit only on CVEs published before this date."),
    dense: bool = typer.Option(False, "--dense/--no-dense", help="Also build map-cwe's dense part (sentence vectors of "
                                                                  "the ~23k labelled descriptions, cached per text). Off by "
                                                                  "default: no gain measured yet (docs/intel.md)."),
    embedder: str = typer.Option(None, "--embedder", help="minilm (default) | minilm-static | minilm-int8 | hashing."),
) -> None:
    """Fit (or load) the cached map-cwe / predict-cvss model now, e.g. before starting the service."""
    import json

    from secfoundry.apps.intel.fitted import IntelModel
    from secfoundry.core.errors import InputError

    try:
        m = IntelModel.get(records=records, published_before=published_before, dense=dense or False,
                           embedder=embedder)
    except (InputError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(json.dumps(m.manifest, indent=1))


@app.command("predict-cvss")
def predict_cvss_cmd(
    text: str = _CVE_TEXT,
    input: str = _CVE_INPUT,
    out: str = typer.Option(None, "--out", help="PRED.jsonl: one {id, vector, score, ...} per line."),
    evidence: bool = typer.Option(False, "--evidence", help="Batch: include per-metric probabilities and neighbours."),
    records: str = _RECORDS,
    convention: str = typer.Option("cna", "--convention", help="cna: as learned from CNA vectors | adp: shifted "
                                                                "toward CISA-ADP analysts' scoring."),
) -> None:
    """Predict a CVSS v3.1 base vector (per-metric probabilities) and its base score."""
    _single_or_batch("cvss", text, input, out, None, evidence, records, convention=convention)


# -- extract-ttps / prioritize / emulate (issue #12, second half) -----------------------------------------
def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


@app.command("extract-ttps")
def extract_ttps_cmd(
    report: str = typer.Argument(..., help="Threat report: text, Markdown, HTML or PDF file ('-' reads stdin)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    navigator: str = typer.Option(None, "--navigator", help="Write an ATT&CK Navigator layer (JSON) here."),
    stix: str = typer.Option(None, "--stix", help="Write a STIX 2.1 bundle here."),
    format: str = typer.Option("auto", "--format", help="auto | text | markdown | html | pdf"),
    encoding: str = typer.Option(None, "--encoding", help="Text encoding when not UTF-8 (e.g. cp1252)."),
    min_confidence: float = typer.Option(0.5, "--min-confidence", min=0.0, max=1.0,
                                         help="Report techniques at or above this confidence (0.5: the tuned cut)."),
    domain: str = typer.Option(None, "--domain", help="enterprise | mobile | ics (default: all)."),
    llm: str = typer.Option(None, "--llm", help="Model spec of an LLM that confirms/rejects candidates."),
) -> None:
    """Extract ATT&CK techniques (with evidence spans), groups and software from a threat report."""
    import json
    import sys

    from secfoundry.apps.intel.navigator import ttps_layer
    from secfoundry.apps.intel.reports import load_report
    from secfoundry.apps.intel.ttps import ExtractOptions, get_extractor
    from secfoundry.core.errors import InputError

    try:
        rep = (load_report(data=sys.stdin.buffer.read(), name="<stdin>", format=format, encoding=encoding)
               if report == "-" else load_report(report, format=format, encoding=encoding))
        ex = get_extractor()
        res = ex.extract(rep, ExtractOptions(min_confidence=min_confidence, domain=domain, llm=llm))
    except (InputError, ValueError) as e:
        _fail(e)
    dom = f"{domain}-attack" if domain else "enterprise-attack"
    if navigator:
        from pathlib import Path

        Path(navigator).write_text(json.dumps(ttps_layer(res, domain=dom), indent=1))
    if stix:
        from pathlib import Path

        from secfoundry.apps.intel.stix_out import build_bundle

        Path(stix).write_text(build_bundle(res, ex.catalog, text=rep.text).serialize(pretty=True))
    if as_json:
        typer.echo(json.dumps(res.model_dump(), indent=1, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(res.techniques)} techniques in {res.source} (ATT&CK {res.attack_version})")
    for c in ("id", "name", "conf", "evidence", "first span"):
        t.add_column(c)
    for h in res.techniques:
        t.add_row(h.id, h.name, f"{h.confidence:.2f}", ",".join(h.evidence),
                  (h.spans[0].text[:90] if h.spans else ""))
    con = Console()
    con.print(t)
    for label, hits in (("groups", res.groups), ("software", res.software), ("campaigns", res.campaigns)):
        if hits:
            con.print(f"{label}: " + ", ".join(f"{h.name} ({h.id})" for h in hits))
    if res.ignored:
        con.print(f"[yellow]{len(res.ignored)} sentence(s) ignored as instructions to a model[/yellow]")


@app.command("prioritize")
def prioritize_cmd(
    input: str = typer.Option(..., "--input", help="CVE ids, CSV, Trivy JSON, Grype JSON or CycloneDX (VEX) JSON."),
    format: str = typer.Option("auto", "--format", help="auto | ids | csv | trivy | grype | cyclonedx"),
    out: str = typer.Option(None, "--out", help="Ranked table: .csv, .json or .md (default: Markdown to stdout)."),
    epss: str = typer.Option("auto", "--epss", help="EPSS CSV file (gz or plain), 'live', 'auto' (cached/live if reachable) or 'none'."),
    exposure: str = typer.Option(None, "--exposure", help="Default exposure: internet | internal | isolated."),
    criticality: str = typer.Option(None, "--criticality", help="Default asset criticality: low | medium | high."),
    assets: str = typer.Option(None, "--assets", help="CSV asset,exposure,criticality (per-asset context)."),
    predict_cvss: bool = typer.Option(True, "--predict-cvss/--no-predict-cvss", help="Predict CVSS when missing."),
) -> None:
    """Rank vulnerabilities: CVSS, EPSS, KEV, predicted SSVC decision and a one-line reason per row."""
    from secfoundry.apps.intel import prioritize_report
    from secfoundry.apps.intel.prioritize import prioritize, read_assets
    from secfoundry.core.errors import InputError
    from secfoundry.kb.knowledge import KnowledgeBase

    for val, allowed, name in ((exposure, ("internet", "internal", "isolated"), "--exposure"),
                               (criticality, ("low", "medium", "high"), "--criticality")):
        if val and val not in allowed:
            _fail(ValueError(f"{name} must be one of {', '.join(allowed)}"))
    try:
        kb = KnowledgeBase.open()
        res = prioritize(input, format=format, kb=kb, epss=epss, exposure=exposure, criticality=criticality,
                         assets=read_assets(assets) if assets else None, predict_missing_cvss=predict_cvss)
    except (InputError, ValueError) as e:
        _fail(e)
    for e in res.errors:
        typer.echo(f"skipped: {e}", err=True)
    for w in res.warnings:
        typer.echo(f"warning: {w}", err=True)
    if out:
        fmt = prioritize_report.write(res, out)
        typer.echo(f"{len(res.rows)} rows ranked -> {out} ({fmt}); " +
                   ", ".join(f"{k} {v}" for k, v in res.counts.items()))
    else:
        typer.echo(prioritize_report.to_markdown(res))


@app.command("emulate")
def emulate_cmd(
    techniques: str = typer.Option(None, "--techniques", help="Technique ids ('T1059.001,T1003') or a file of ids."),
    entity: str = typer.Option(None, "--entity", help="ATT&CK group/software/campaign id or name (G0016, APT29)."),
    report: str = typer.Option(None, "--report", help="A threat report (techniques via extract-ttps)."),
    platform: str = typer.Option(None, "--platform", help="windows | linux | macos | ... (filters tests and rules)."),
    out: str = typer.Option(None, "--out", help="Plan file: .md or .json (default: Markdown to stdout)."),
    navigator: str = typer.Option(None, "--navigator", help="Write a Navigator layer coloured by coverage."),
    max_tests: int = typer.Option(3, "--max-tests", min=0, help="Atomic tests listed per technique."),
    max_rules: int = typer.Option(5, "--max-rules", min=0, help="Sigma rules listed per technique."),
) -> None:
    """Adversary emulation plan: techniques by tactic, Atomic tests, Sigma rules, coverage gaps."""
    import json
    from pathlib import Path

    from secfoundry.apps.intel.emulate import plan_for
    from secfoundry.apps.intel.emulate_report import to_layer, to_markdown
    from secfoundry.core.errors import InputError

    try:
        plan = plan_for(techniques=techniques, entity=entity, report=report, platform=platform,
                        max_tests=max_tests, max_rules=max_rules)
    except (InputError, ValueError) as e:
        _fail(e)
    if navigator:
        Path(navigator).write_text(json.dumps(to_layer(plan), indent=1))
    text = json.dumps(plan.model_dump(), indent=1) if out and out.endswith(".json") else to_markdown(plan)
    if out:
        Path(out).write_text(text)
        typer.echo(f"{len(plan.steps)} techniques -> {out}; no test: {len(plan.gaps_no_test)}, "
                   f"no detection: {len(plan.gaps_no_detection)}")
    else:
        typer.echo(text)
