"""Typed request/response models of ``secfoundry review`` (config, code, compliance).

The HTTP service (issue #17) reuses these models as its request and response bodies, so they
carry only plain data (no paths to open, no callables).
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, Field


class Severity(str, Enum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self.value]

    @classmethod
    def parse(cls, value: str | None, default: "Severity | None" = None) -> "Severity":
        """Engines spell severities differently (``HIGH``, ``warning``, ``unknown``)."""
        v = str(value or "").strip().lower()
        v = {"error": "high", "warning": "medium", "note": "low", "none": "info", "undefined": "info",
             "moderate": "medium", "unknown": "", "informational": "info"}.get(v, v)
        try:
            return cls(v)
        except ValueError:
            return default or cls.medium


_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class Location(BaseModel):
    file: str = Field(description="path as given on the command line (relative to the scanned root)")
    start_line: int = Field(ge=1)
    end_line: int | None = Field(default=None, ge=1)
    snippet: str = ""


class Guidance(BaseModel):
    """Explanation and fix text drawn from the knowledge base, with where it came from."""
    source_id: str = Field(description="KB id the text comes from (CWE-89, owasp:..., cac:...)")
    title: str = ""
    text: str = ""
    url: str = ""


class Finding(BaseModel):
    rule_id: str = Field(description="engine rule id (B602, CKV_DOCKER_4, cac:sshd_disable_root_login)")
    engine: str = Field(description="which engine produced the finding: bandit, semgrep, checkov, "
                                    "gixy, secfoundry-cac, llm")
    title: str = ""
    message: str = ""
    severity: Severity = Severity.medium
    confidence: Literal["low", "medium", "high"] = "medium"
    location: Location
    cwe: list[str] = Field(default_factory=list, description="CWE ids validated against the KB")
    controls: list[str] = Field(default_factory=list, description="NIST SP 800-53 rev5 controls")
    compliance_rules: list[str] = Field(default_factory=list, description="ComplianceAsCode rule ids (cac:...)")
    fix: str = ""
    explanation: str = ""
    guidance: list[Guidance] = Field(default_factory=list)
    mapping_source: list[str] = Field(default_factory=list,
                                      description="how cwe/controls were obtained (engine, kb:cac, kb:ctid, ...)")
    llm_verdict: Literal["confirmed", "rejected", "added", "unreviewed"] = "unreviewed"
    llm_note: str = ""
    fingerprint: str = ""


class Skipped(BaseModel):
    path: str
    reason: str = Field(description="binary, too large, symlink loop, unreadable, malformed YAML/HCL, ...")


class ReviewRequest(BaseModel):
    kind: Literal["config", "code"]
    paths: list[str]
    engines: list[str] | None = Field(default=None, description="restrict engines; None = all available")
    llm: str | None = Field(default=None, description="model spec for the confirm/catch pass")
    max_file_bytes: int = 2_000_000
    jobs: int = 2
    enrich: bool = True


class EngineRun(BaseModel):
    engine: str
    version: str = ""
    files: int = 0
    findings: int = 0
    seconds: float = 0.0
    status: Literal["ok", "unavailable", "failed", "skipped"] = "ok"
    note: str = ""


class ReviewResult(BaseModel):
    kind: Literal["config", "code"]
    root: str
    files_reviewed: int = 0
    findings: list[Finding] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)
    engines: list[EngineRun] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def at_or_above(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity.rank >= severity.rank and f.llm_verdict != "rejected"]


# -- compliance ---------------------------------------------------------------------------------------

class Evidence(BaseModel):
    kind: Literal["finding", "technique"]
    ref: str = Field(description="rule id @ file:line, or ATT&CK technique id")
    via: str = Field(description="mapping path, e.g. 'CWE-89 > CAPEC-66 > T1190 > ctid' or 'cac rule'")
    severity: Severity | None = None


class ControlStatus(BaseModel):
    control: str
    title: str = ""
    family: str = ""
    status: Literal["failing", "relevant", "covered", "gap"] = Field(
        default="relevant", description="failing: findings violate it; relevant: mitigates an input technique, "
                                         "no finding; covered: in the baseline, relevant, no failing finding; "
                                         "gap: implicated but missing from the baseline")
    in_baseline: bool | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    max_severity: Severity | None = None


class ComplianceRequest(BaseModel):
    findings: list[Finding] = Field(default_factory=list)
    techniques: list[str] = Field(default_factory=list)
    baseline: list[str] | None = Field(default=None, description="controls the organisation implements / has in "
                                                                  "scope; implicated controls outside it are gaps")


class ComplianceReport(BaseModel):
    controls: list[ControlStatus] = Field(default_factory=list)
    unmapped: list[str] = Field(default_factory=list, description="inputs no control could be found for")
    inputs: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
