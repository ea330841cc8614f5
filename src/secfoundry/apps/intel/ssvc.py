"""SSVC for prioritize: predict CISA's decision points, then apply CISA's coordinator tree.

Decision points (CISA SSVC guide, Nov 2022; CISA vulnrichment publishes the first three per CVE):
- Exploitation: none / poc / active. ``active`` when the CVE is in CISA's KEV catalog; ``poc``
  when EPSS says exploitation activity is likely (percentile >= ``POC_PERCENTILE``) or the
  description mentions a public exploit; else ``none``.
- Automatable: yes / no. From the CVSS v3 base vector: network attack vector, low complexity, no
  privileges and no user interaction (steps 1-4 of the kill chain can be automated).
- Technical Impact: partial / total. ``total`` when the attacker gets total control or total
  disclosure: C:H and I:H (or scope changed with high impact), or the description says code/command
  execution.
- Mission & Well-being: low / medium / high, from the asset context (criticality; default medium).

The tree (CISA coordinator decision table 2.0.3, as published in CERTCC/SSVC) maps the four points
to Track / Track* / Attend / Act. ``bench/intel_prioritize_ssvc.py`` measures agreement per field
with the decisions CISA published for the shared CVE records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

POC_PERCENTILE = 0.90

# (exploitation, automatable, technical impact) -> decisions for mission & well-being low/medium/high
_TREE: dict[tuple[str, str, str], tuple[str, str, str]] = {
    ("none", "no", "partial"): ("Track", "Track", "Track"),
    ("none", "no", "total"): ("Track", "Track", "Track*"),
    ("none", "yes", "partial"): ("Track", "Track", "Attend"),
    ("none", "yes", "total"): ("Track", "Track", "Attend"),
    ("poc", "no", "partial"): ("Track", "Track", "Track*"),
    ("poc", "no", "total"): ("Track", "Track*", "Attend"),
    ("poc", "yes", "partial"): ("Track", "Track", "Attend"),
    ("poc", "yes", "total"): ("Track", "Track*", "Attend"),
    ("active", "no", "partial"): ("Track", "Track", "Attend"),
    ("active", "no", "total"): ("Track", "Attend", "Act"),
    ("active", "yes", "partial"): ("Attend", "Attend", "Act"),
    ("active", "yes", "total"): ("Attend", "Act", "Act"),
}
_MWI = {"low": 0, "medium": 1, "high": 2}
DECISION_RANK = {"Act": 3, "Attend": 2, "Track*": 1, "Track": 0}

_POC_TEXT = re.compile(r"(?i)disclosed to the public|exploit (?:has been|was|is) (?:made )?(?:publicly|public)|"
                       r"publicly available exploit|public exploit|proof[- ]of[- ]concept|\bpoc\b|"
                       r"exploit(?:ation)? code|metasploit|exploit-?db")
_TOTAL_TEXT = re.compile(r"(?i)\b(?:execute arbitrary (?:code|commands?)|remote code execution|arbitrary code "
                         r"execution|command injection|take (?:full )?control|full control|gain root|root "
                         r"privileges|complete (?:control|compromise)|os command)")


@dataclass
class SSVCPoints:
    exploitation: str
    automatable: str
    technical_impact: str
    mission_wellbeing: str = "medium"
    why: tuple[str, ...] = ()

    @property
    def decision(self) -> str:
        return decide(self.exploitation, self.automatable, self.technical_impact, self.mission_wellbeing)


def decide(exploitation: str, automatable: str, technical_impact: str, mission_wellbeing: str = "medium") -> str:
    key = (exploitation.lower(), automatable.lower(), technical_impact.lower())
    if key not in _TREE:
        raise ValueError(f"unknown SSVC decision point values {key}")
    mw = mission_wellbeing.lower()
    if mw not in _MWI:
        raise ValueError(f"mission & well-being must be low, medium or high, not {mission_wellbeing!r}")
    return _TREE[key][_MWI[mw]]


def _metrics(vector: str | None) -> dict[str, str]:
    if not vector:
        return {}
    return dict(p.split(":", 1) for p in vector.split("/")[1:] if ":" in p)


def predict_points(*, vector: str | None, description: str = "", kev: bool = False,
                   epss_percentile: float | None = None, mission_wellbeing: str = "medium") -> SSVCPoints:
    why = []
    if kev:
        e = "active"
        why.append("in CISA KEV")
    elif (epss_percentile is not None and epss_percentile >= POC_PERCENTILE) or _POC_TEXT.search(description or ""):
        e = "poc"
        why.append("EPSS top decile" if epss_percentile is not None and epss_percentile >= POC_PERCENTILE
                   else "public exploit mentioned")
    else:
        e = "none"
    m = _metrics(vector)
    auto = "yes" if (m.get("AV") == "N" and m.get("AC") == "L" and m.get("PR") == "N" and m.get("UI") == "N") else "no"
    if auto == "yes":
        why.append("network, no auth, no user interaction")
    high = [k for k in ("C", "I", "A") if m.get(k) == "H"]
    total = (m.get("C") == "H" and m.get("I") == "H") or bool(_TOTAL_TEXT.search(description or ""))
    ti = "total" if total else "partial"
    if total:
        why.append("total technical impact" + (f" ({'/'.join(high)}:H)" if high else ""))
    return SSVCPoints(e, auto, ti, mission_wellbeing, tuple(why))
