"""The secfoundry layer over the engines: map every finding to CWE / NIST 800-53 /
ComplianceAsCode ids (validated against the KB), explain it and give the fix.

- CWE: the engine's own (bandit, semgrep rule metadata), else the mapping tables (checkov,
  gixy, compose), else the host-config family default; ids the KB doesn't know are dropped.
- Controls: a ComplianceAsCode rule's NIST references (KB), else the CWE's controls
  (``KBMap.cwe_controls``: KB chain CWE > CAPEC > ATT&CK > CTID, or the table).
- Explanation: CWE name + the KB rule rationale; fix: the engine's or rule's fix, then the CWE
  mitigation text and OWASP cheat sheet(s) the KB links to the weakness.
"""

from __future__ import annotations

import hashlib

from secfoundry.apps.review.config_engines import checkov_mapping
from secfoundry.apps.review.kbmap import KBMap, tables
from secfoundry.apps.review.schemas import Finding


def enrich(f: Finding, kb: KBMap, *, guidance: bool = True) -> Finding:
    src: list[str] = []
    cwe = list(f.cwe)
    ctl: list[str] = []
    if cwe:
        src.append(f"cwe:{f.engine}")
    if f.engine == "checkov":
        c, k = checkov_mapping(f.rule_id, f.title)
        if not cwe:
            cwe, src = c, src + ["cwe:table(checkov)"]
        ctl += k
    elif f.engine == "gixy":
        g = tables().get("gixy", {})
        entry = g.get(f.rule_id.removeprefix("gixy:")) or g.get("default", {})
        if not cwe:
            cwe, src = list(entry.get("cwe", [])), src + ["cwe:table(gixy)"]
        ctl += entry.get("controls", [])
    elif f.engine == "secfoundry-cac":
        rec = kb.cac_rule(f.rule_id)
        if rec:
            ctl += rec["attributes"].get("nist", [])
            src.append("controls:kb:complianceascode")
            if not f.explanation:
                f.explanation = rec["attributes"].get("rationale", "")
            cis = rec["attributes"].get("cis_controls") or []
            if cis:
                f.explanation += "\nCIS: " + ", ".join(f"{c['policy']} {c['control']}" for c in cis[:4])
        if not cwe:
            fam = f.rule_id.split(":", 1)[-1].split("_", 1)[0]
            fam = {"sudo": "sudoers", "sudoers": "sudoers", "httpd": "apache"}.get(fam, fam)
            cwe = list(tables().get("cac_family_cwe", {}).get(fam, ["CWE-16"]))
            src.append("cwe:table(cac family)")
    f.cwe = kb.valid_cwes(cwe)
    for c in f.cwe:
        cc, via = kb.cwe_controls(c) if kb.available else ((), "")
        if cc:
            ctl += list(cc)
            src.append(f"controls:{via}")
    f.controls = kb.valid_controls(ctl) if ctl else []
    f.compliance_rules = [r for r in f.compliance_rules if not kb.available or kb.known(r)]
    if kb.available:
        if f.cwe and not f.explanation:
            names = "; ".join(f"{c} {kb.cwe_name(c)}" for c in f.cwe if kb.cwe_name(c))
            f.explanation = names
        if guidance:
            seen = set()
            for c in f.cwe[:2]:
                for g in kb.guidance(c):
                    if g.source_id not in seen:
                        seen.add(g.source_id)
                        f.guidance.append(g)
            if not f.fix and f.guidance:
                f.fix = f.guidance[0].text
    f.mapping_source = list(dict.fromkeys(src))
    f.fingerprint = fingerprint(f)
    return f


def fingerprint(f: Finding) -> str:
    """Stable across runs and line shifts: rule + file + normalised snippet."""
    snippet = " ".join((f.location.snippet or "").split())
    key = f"{f.rule_id}|{f.location.file}|{snippet or f.location.start_line}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def dedupe(findings: list[Finding]) -> list[Finding]:
    """Exact repeats (same file, line, rule, engine and message) are dropped."""
    seen: set[tuple[str, int, str, str, str]] = set()
    out = []
    for f in findings:
        # the message names the resource: for_each/count instances share a line but are distinct
        key = (f.location.file, f.location.start_line, f.rule_id, f.engine, f.message)
        if key in seen:
            continue
        seen.add(key)
        out.append(f)
    return out
