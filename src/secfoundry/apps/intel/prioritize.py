"""prioritize: a vulnerability list + asset context -> a ranked table with a reason per row.

    from secfoundry.apps.intel.prioritize import prioritize
    ranked = prioritize("trivy.json", epss="epss.csv.gz", exposure="internet", criticality="high")

Per row: CVSS (given by the scanner, else the KB's CVE record, else predicted from the description
by predict-cvss), EPSS (file or live), KEV membership (KB), the predicted SSVC decision points and
CISA's decision (``ssvc``), and a one-line reason. Ranked by decision, then KEV, EPSS, CVSS and
asset criticality. A CycloneDX VEX ``not_affected``/``false_positive``/``resolved`` entry is kept
but ranked last with that reason.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secfoundry.apps.intel.epss import EPSSTable, live_epss, load_epss
from secfoundry.apps.intel.schemas_prioritize import PrioritizeResult, RankedVuln
from secfoundry.apps.intel.ssvc import DECISION_RANK, predict_points
from secfoundry.apps.intel.vulnfeeds import VulnItem, VulnList, read_vulns

if TYPE_CHECKING:  # pragma: no cover
    from secfoundry.kb.knowledge import KnowledgeBase

_PREDICTOR_BROKEN: list[bool] = []  # set once predict-cvss failed in this process
_VEX_DONE = {"not_affected", "false_positive", "resolved", "resolved_with_pedigree"}
_CRIT = {"low": 0, "medium": 1, "high": 2}


def _cvss_predictor():
    """I1's predict-cvss when it is installed in this package; None otherwise."""
    try:
        from secfoundry.apps.intel import cvss_predict as cvss_mod
    except ImportError:
        return None
    return getattr(cvss_mod, "predict_cvss", None)


def _score(vector: str | None) -> float | None:
    if not vector or not vector.startswith("CVSS:3"):
        return None
    try:
        from cvss import CVSS3

        return float(CVSS3(vector).scores()[0])
    except Exception:  # noqa: BLE001 - a malformed vector from a scanner is reported, not fatal
        return None


def _kb_facts(kb: "KnowledgeBase | None", vid: str) -> dict[str, Any]:
    """KEV membership, description and CVSS from the KB's records for ``vid``."""
    out: dict[str, Any] = {"kev": False}
    if kb is None:
        return out
    for r in kb.store.records_by_id(vid):
        a = r.attributes or {}
        if r.source == "kev" or a.get("kev"):
            out["kev"] = True
            out["kev_date"] = a.get("date_added")
            out["ransomware"] = a.get("known_ransomware_campaign_use")
        if isinstance(a.get("ssvc"), dict) and not out.get("ssvc"):
            out["ssvc"] = {k.lower().replace(" ", "_"): str(v).lower() for k, v in a["ssvc"].items()}
        if r.description and not out.get("description"):
            out["description"] = r.description
        for key in ("cvss_v31_vector", "cvss_vector", "cvss3_vector", "vector"):
            v = a.get(key)
            if isinstance(v, str) and v.startswith("CVSS:3") and not out.get("vector"):
                out["vector"] = v
        for m in a.get("metrics") or a.get("cvss") or []:
            if isinstance(m, dict):
                v = m.get("vectorString") or m.get("vector")
                if isinstance(v, str) and v.startswith("CVSS:3") and not out.get("vector"):
                    out["vector"] = v
    return out


def resolve_epss(epss: str | Path | EPSSTable | None, warnings: list[str]) -> EPSSTable | None:
    if epss is None or isinstance(epss, EPSSTable):
        return epss
    s = str(epss)
    if s == "none":
        return None
    if s in ("live", "auto"):
        try:
            return live_epss(timeout=10.0 if s == "auto" else 30.0)
        except Exception as e:  # noqa: BLE001 - offline: rank without EPSS, say so
            if s == "live":
                raise
            warnings.append(f"EPSS unavailable ({e}); ranked without it")
            return None
    return load_epss(s)


def prioritize(source: str | Path | VulnList, *, format: str = "auto", kb: "KnowledgeBase | None" = None,
               epss: str | Path | EPSSTable | None = "auto", exposure: str | None = None,
               criticality: str | None = None, assets: dict[str, dict[str, str]] | None = None,
               predict_missing_cvss: bool = True, use_published_ssvc: bool = True) -> PrioritizeResult:
    """Rank ``source``. ``use_published_ssvc``: where the KB holds CISA's own SSVC decision points
    for a CVE (vulnrichment), they replace the predicted ones (KEV still forces ``active``)."""
    vl = source if isinstance(source, VulnList) else read_vulns(source, format=format)
    warnings: list[str] = []
    table = resolve_epss(epss, warnings)
    if table is not None:
        warnings.extend(table.errors[:10])
    _PREDICTOR_BROKEN.clear()
    predictor = _cvss_predictor() if predict_missing_cvss else None
    if predict_missing_cvss and predictor is None:
        warnings.append("predict-cvss is not available: rows without CVSS stay without it")
    rows: list[RankedVuln] = []
    for it in vl.items:
        rows.append(_rank_row(it, kb, table, predictor, exposure, criticality, assets or {}, warnings,
                              use_published_ssvc))
    rows.sort(key=_sort_key)
    for i, r in enumerate(rows, start=1):
        r.rank = i
    return PrioritizeResult(rows=rows, format=vl.format, source=vl.source, errors=[str(e) for e in vl.errors],
                            warnings=warnings, epss_date=table.score_date if table else None,
                            counts={d: sum(r.decision == d for r in rows) for d in DECISION_RANK})


def _rank_row(it: VulnItem, kb, table, predictor, exposure, criticality, assets, warnings,
              use_published_ssvc: bool = True) -> RankedVuln:
    ctx = assets.get(it.asset, {}) if it.asset else {}
    exp = it.exposure or ctx.get("exposure") or exposure
    crit = it.criticality or ctx.get("criticality") or criticality or "medium"
    facts = _kb_facts(kb, it.id)
    for a in it.aliases:
        if not facts["kev"]:
            facts.update({k: v for k, v in _kb_facts(kb, a).items() if v})
    desc = it.description or facts.get("description") or ""
    vector, score, cvss_src = it.cvss_vector, it.cvss_score, "input"
    if not vector and facts.get("vector"):
        vector, cvss_src = facts["vector"], "kb"
    if vector and score is None:
        score = _score(vector)
    if not vector and score is None and predictor is not None and desc and not _PREDICTOR_BROKEN:
        try:
            pred = predictor(desc, it.id if it.id.upper().startswith("CVE-") else None)
            vector = getattr(pred, "vector", None) or (pred.get("vector") if isinstance(pred, dict) else None)
            score = getattr(pred, "score", None) or (pred.get("score") if isinstance(pred, dict) else None)
            cvss_src = "predicted"
        except Exception as e:  # noqa: BLE001 - no model here: say so once, rank on the rest
            warnings.append(f"{it.row} {it.id}: CVSS prediction failed ({type(e).__name__}: {e}); "
                            "predict-cvss disabled for the remaining rows")
            _PREDICTOR_BROKEN.append(True)
    if not vector and score is None:
        cvss_src = "none"
    e = table.get(it.id) if table is not None else None
    if e is None and table is not None:
        e = next((x for a in it.aliases if (x := table.get(a))), None)
    pts = predict_points(vector=vector, description=desc, kev=facts["kev"], epss_percentile=e[1] if e else None,
                         mission_wellbeing=crit)
    why = list(pts.why)
    pub = facts.get("ssvc") if use_published_ssvc else None
    if pub and {"exploitation", "automatable", "technical_impact"} <= set(pub):
        pts.exploitation = "active" if facts["kev"] else pub["exploitation"]
        pts.automatable, pts.technical_impact = pub["automatable"], pub["technical_impact"]
        why = ["CISA's SSVC points (vulnrichment)"] + [w for w in why if w == "in CISA KEV"]
    elif not desc and vector is None and score is None:
        warnings.append(f"{it.row} {it.id}: no description or CVSS in the input or the KB; ranked on KEV/EPSS only")
    auto = pts.automatable
    if exp == "isolated" and auto == "yes":
        auto = "no"
        why.append("asset isolated: not automatable here")
    from secfoundry.apps.intel.ssvc import decide

    decision = decide(pts.exploitation, auto, pts.technical_impact, crit)
    if it.vex_state in _VEX_DONE:
        decision_note = f"VEX says {it.vex_state}" + (f" ({it.vex_justification})" if it.vex_justification else "")
        reason = decision_note + "; ranked last"
    else:
        parts = [f"{decision}:"]
        parts.append("in KEV" + (f" since {facts['kev_date']}" if facts.get("kev_date") else "") if facts["kev"]
                     else "not in KEV")
        if e:
            parts.append(f"EPSS {e[0]:.2f} (p{round(e[1] * 100)})")
        if score is not None:
            parts.append(f"CVSS {score:.1f}" + (" predicted" if cvss_src == "predicted" else ""))
        parts.extend(w for w in why if w != "in CISA KEV")
        if crit != "medium":
            parts.append(f"{crit} criticality asset")
        if exp:
            parts.append(f"{exp} exposure")
        reason = parts[0] + " " + ", ".join(parts[1:])
    return RankedVuln(rank=0, id=it.id, aliases=it.aliases, row=it.row, package=it.package, version=it.version,
                      fixed_version=it.fixed_version, asset=it.asset, cvss_vector=vector,
                      cvss_score=round(float(score), 1) if score is not None else None, cvss_source=cvss_src,
                      epss=round(e[0], 5) if e else None, epss_percentile=round(e[1], 5) if e else None,
                      kev=facts["kev"], exploitation=pts.exploitation, automatable=auto,
                      technical_impact=pts.technical_impact, mission_wellbeing=crit, decision=decision,
                      vex_state=it.vex_state, exposure=exp, reason=reason)


def _sort_key(r: RankedVuln) -> tuple:
    done = r.vex_state in _VEX_DONE
    return (done, -DECISION_RANK[r.decision], not r.kev, -(r.epss or 0.0), -(r.cvss_score or 0.0),
            -_CRIT.get(r.mission_wellbeing, 1), r.id, r.row)


def read_assets(path: str | Path) -> dict[str, dict[str, str]]:
    """``asset,exposure,criticality`` CSV -> {asset: {"exposure":..., "criticality":...}}."""
    import csv

    from secfoundry.core.errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError("no such assets file", file=str(p))
    out: dict[str, dict[str, str]] = {}
    with p.open(newline="", encoding="utf-8-sig") as f:
        for i, r in enumerate(csv.DictReader(f), start=2):
            name = (r.get("asset") or "").strip()
            if not name:
                raise InputError("empty asset name", file=str(p), row=i, field="asset")
            ctx = {}
            for k, allowed in (("exposure", ("internet", "internal", "isolated")), ("criticality", ("low", "medium", "high"))):
                v = (r.get(k) or "").strip().lower()
                if v and v not in allowed:
                    raise InputError(f"{v!r} is not one of {', '.join(allowed)}", file=str(p), row=i, field=k)
                if v:
                    ctx[k] = v
            out[name] = ctx
    return out


def parse_ssvc_field(value: Any) -> dict[str, str] | None:
    """The shared CVE records' ``ssvc`` field (a dict, or its Python/JSON text) -> decision points."""
    if not value or value == "None":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = ast.literal_eval(value)
    return {k: str(v).lower() for k, v in value.items() if k in ("Exploitation", "Automatable", "Technical Impact")}
