"""Request/response models of prioritize (Python API, CLI and HTTP service)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class RankedVuln(BaseModel):
    rank: int
    id: str
    aliases: list[str] = []
    row: str = Field("", description="where the row came from in the input")
    package: str = ""
    version: str = ""
    fixed_version: str = ""
    asset: str = ""
    cvss_vector: Optional[str] = None
    cvss_score: Optional[float] = None
    cvss_source: str = Field("none", description="input | kb | predicted | none")
    epss: Optional[float] = None
    epss_percentile: Optional[float] = None
    kev: bool = False
    exploitation: str = Field(description="SSVC: none | poc | active (predicted)")
    automatable: str = Field(description="SSVC: yes | no (predicted)")
    technical_impact: str = Field(description="SSVC: partial | total (predicted)")
    mission_wellbeing: str = "medium"
    decision: str = Field(description="CISA SSVC decision: Track | Track* | Attend | Act")
    vex_state: Optional[str] = None
    exposure: Optional[str] = None
    reason: str = ""


class PrioritizeRequest(BaseModel):
    content: str = Field(description="the list: CVE ids, CSV, Trivy/Grype/CycloneDX JSON", max_length=20_000_000)
    format: str = "auto"
    exposure: Optional[str] = Field(None, description="internet | internal | isolated (default for every row)")
    criticality: Optional[str] = Field(None, description="low | medium | high (default for every row)")
    epss: str = Field("none", description="none | live (the service does not read local files)")


class PrioritizeResult(BaseModel):
    rows: list[RankedVuln] = []
    format: str = ""
    source: str = ""
    counts: dict[str, int] = {}
    epss_date: Optional[str] = None
    errors: list[str] = Field([], description="input rows that were skipped, with file/row/field")
    warnings: list[str] = []


COLUMNS = ["rank", "id", "decision", "kev", "epss", "epss_percentile", "cvss_score", "cvss_vector", "cvss_source",
           "exploitation", "automatable", "technical_impact", "mission_wellbeing", "package", "version",
           "fixed_version", "asset", "exposure", "vex_state", "aliases", "row", "reason"]
