"""ATT&CK Navigator layers (layer format 4.5, Navigator 5.x).

Written as plain JSON rather than through ``mitreattack-python``: its layer classes would bring
14 more packages (openpyxl, xlsxwriter, drawsvg, pooch, ...) into the environment for one small,
documented JSON format. ``validate_layer`` checks the fields Navigator requires.
"""

from __future__ import annotations

from typing import Any, Iterable

LAYER_VERSION = "4.5"
NAVIGATOR_VERSION = "5.1.0"
DOMAINS = ("enterprise-attack", "mobile-attack", "ics-attack")
# coverage colours for emulation plans
COVERED = "#8ec843"      # test and detection
TEST_ONLY = "#fce93b"    # an Atomic test, no Sigma rule
DETECT_ONLY = "#66b1ff"  # a Sigma rule, no Atomic test
GAP = "#ff6666"          # neither


def layer(name: str, techniques: Iterable[dict[str, Any]], *, attack_version: str, domain: str = "enterprise-attack",
          description: str = "", gradient: bool = True, legend: list[tuple[str, str]] | None = None,
          metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """A layer. Each technique dict: techniqueID, and optional score, color, comment, tactic, metadata."""
    techs = []
    parents_with_subs = set()
    for t in techniques:
        entry = {"techniqueID": t["techniqueID"], "enabled": True, "showSubtechniques": False,
                 "metadata": [{"name": k, "value": str(v)} for k, v in (t.get("metadata") or {}).items()],
                 "links": []}
        for k in ("tactic", "score", "color", "comment"):
            if t.get(k) not in (None, ""):
                entry[k] = t[k]
        techs.append(entry)
        if "." in t["techniqueID"]:
            parents_with_subs.add(t["techniqueID"].split(".")[0])
    listed = {t["techniqueID"] for t in techs}
    for p in sorted(parents_with_subs):  # expand parents so found sub-techniques are visible
        if p in listed:
            for t in techs:
                if t["techniqueID"] == p:
                    t["showSubtechniques"] = True
        else:
            techs.append({"techniqueID": p, "enabled": True, "showSubtechniques": True, "metadata": [], "links": []})
    major = (attack_version or "").split(".")[0]
    out: dict[str, Any] = {
        "name": name[:200],
        "versions": {"attack": major, "navigator": NAVIGATOR_VERSION, "layer": LAYER_VERSION},
        "domain": domain,
        "description": description[:2000],
        "filters": {"platforms": []},
        "sorting": 3,
        "layout": {"layout": "side", "aggregateFunction": "average", "showID": True, "showName": True,
                   "showAggregateScores": False, "countUnscored": False, "expandedSubtechniques": "annotated"},
        "hideDisabled": False,
        "techniques": techs,
        "gradient": {"colors": ["#ffffff", "#ffb86b", "#ff6666"] if gradient else ["#ffffff", "#ffffff"],
                     "minValue": 0, "maxValue": 100},
        "legendItems": [{"label": lbl, "color": c} for lbl, c in (legend or [])],
        "metadata": [{"name": k, "value": str(v)} for k, v in (metadata or {}).items()],
        "links": [],
        "showTacticRowBackground": False,
        "tacticRowBackground": "#dddddd",
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
        "selectVisibleTechniques": False,
    }
    if not out["versions"]["attack"]:
        del out["versions"]["attack"]
    return out


def validate_layer(doc: dict[str, Any]) -> list[str]:
    """Problems that would stop Navigator from loading the layer (empty list when fine)."""
    errs = []
    for k in ("name", "versions", "domain", "techniques"):
        if k not in doc:
            errs.append(f"missing {k}")
    if doc.get("domain") not in DOMAINS:
        errs.append(f"domain {doc.get('domain')!r} is not one of {DOMAINS}")
    if (doc.get("versions") or {}).get("layer") != LAYER_VERSION:
        errs.append("versions.layer must be " + LAYER_VERSION)
    for i, t in enumerate(doc.get("techniques") or []):
        if not isinstance(t.get("techniqueID"), str):
            errs.append(f"techniques[{i}] has no techniqueID")
        if "score" in t and not isinstance(t["score"], (int, float)):
            errs.append(f"techniques[{i}].score is not a number")
    return errs


def ttps_layer(result: Any, *, name: str | None = None, domain: str = "enterprise-attack") -> dict[str, Any]:
    """extract-ttps result -> layer scored by confidence (0-100), evidence in comments."""
    techs = []
    for t in result.techniques:
        quote = t.spans[0].text if t.spans else ""
        techs.append({"techniqueID": t.id, "score": round(t.confidence * 100),
                      "comment": (f"{t.confidence:.2f} ({', '.join(t.evidence)}): {quote}")[:500],
                      "metadata": {"evidence": ", ".join(t.evidence), "spans": len(t.spans)}})
    return layer(name or f"TTPs: {result.source}", techs, attack_version=result.attack_version, domain=domain,
                 description=f"Techniques extracted by secfoundry intel extract-ttps from {result.source}",
                 metadata={"generator": "secfoundry intel extract-ttps", "attack_version": result.attack_version})
