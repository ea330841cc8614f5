"""Typed knowledge-base records that every source connector yields.

A record is identified by (source, id). Several sources may describe the same id (a CVE from
cvelistV5, NVD, KEV, EPSS, OSV aliases); the KB merges them when showing that id.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Record types used across connectors (a connector may add its own, documented in its module).
TECHNIQUE = "technique"          # ATT&CK technique / sub-technique (T1059, T1059.001)
TACTIC = "tactic"                # TA0002
GROUP = "group"                  # G0016
SOFTWARE = "software"            # S0002 (malware/tool)
MITIGATION = "mitigation"        # M1036
DATA_SOURCE = "data-source"      # DS0017 / data components
CAMPAIGN = "campaign"            # C0001
ASSET = "asset"                  # ICS assets (A0001)
DETECTION = "detection-strategy" # ATT&CK v18 detection strategies / analytics
WEAKNESS = "weakness"            # CWE-79
CWE_CATEGORY = "cwe-category"
CWE_VIEW = "cwe-view"
ATTACK_PATTERN = "attack-pattern"  # CAPEC-66
VULNERABILITY = "vulnerability"  # CVE-2024-3400 (cve, nvd, kev, epss all use this type)
ADVISORY = "advisory"            # GHSA-..., PYSEC-..., RUSTSEC-...
SIGMA_RULE = "sigma-rule"
ATOMIC_TEST = "atomic-test"
CHEATSHEET = "cheatsheet"
D3FEND_TECHNIQUE = "d3fend-technique"  # D3-...
CONTROL = "control"              # NIST 800-53 AC-2, AC-2(1)
COMPLIANCE_RULE = "compliance-rule"  # ComplianceAsCode rule
MAPPING = "mapping"              # CTID mapping objects


@dataclass
class Relation:
    """A typed edge to another record id, e.g. ("subtechnique-of", "T1059").

    Common types: subtechnique-of, uses, mitigates, detects, child-of, parent-of, member-of,
    related-weakness, related-attack-pattern, related-technique, tests, maps-to, alias-of,
    revoked-by, counters (D3FEND), references-control.
    """

    type: str
    target: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Record:
    id: str  # canonical id, upper-case prefixes: T1059.001, CWE-79, CAPEC-66, CVE-2024-3400, D3-AL, AC-2
    type: str
    name: str
    description: str
    source: str  # connector name
    url: str = ""
    version: str = ""  # source version (ATT&CK 18.1, CWE 4.14, KEV catalog date...)
    license: str = ""
    aliases: list[str] = field(default_factory=list)
    deprecated: bool = False
    revoked: bool = False
    replaced_by: str | None = None
    relations: list[Relation] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)  # type-specific fields

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Record":
        d = dict(d)
        d["relations"] = [r if isinstance(r, Relation) else Relation(**r) for r in d.get("relations", [])]
        return cls(**d)
