"""Request/response models of emulate (Python API, CLI and HTTP service)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class AtomicTestRef(BaseModel):
    id: str
    name: str
    technique: str = Field(description="the technique the test exercises (may be a sub-technique of the step's)")
    platforms: list[str] = []
    executor: str = ""
    elevation_required: bool = False
    command: str = ""
    cleanup_command: str = ""
    input_arguments: dict[str, str] = Field({}, description="argument -> default value")
    path: str = ""


class SigmaRuleRef(BaseModel):
    id: str
    title: str
    technique: str
    level: str = ""
    status: str = ""
    logsource: dict[str, str] = {}
    path: str = ""
    via_parent: bool = Field(False, description="rule is tagged with the parent technique only")


class PlanStep(BaseModel):
    order: int
    technique: str
    name: str
    tactic: str
    tactics: list[str] = []
    source: str = Field("", description="why it is in the plan: input, group/software uses, report span")
    atomic_tests: list[AtomicTestRef] = []
    atomic_total: int = 0
    sigma_rules: list[SigmaRuleRef] = []
    sigma_total: int = 0
    coverage: str = Field(description="covered | test-only | detection-only | gap")


class EmulationRequest(BaseModel):
    techniques: list[str] = []
    entity: Optional[str] = Field(None, description="ATT&CK group/software/campaign id (G0016, S0154, C0022)")
    report_text: Optional[str] = Field(None, max_length=2_000_000)
    platform: Optional[str] = Field(None, description="windows | linux | macos | ...")
    max_tests: int = Field(3, ge=0, le=50)
    max_rules: int = Field(5, ge=0, le=100)


class EmulationPlan(BaseModel):
    title: str
    attack_version: str = ""
    platform: Optional[str] = None
    steps: list[PlanStep] = []
    gaps_no_test: list[str] = []
    gaps_no_detection: list[str] = []
    unknown: list[str] = Field([], description="inputs that are not current ATT&CK techniques (with why)")
    warnings: list[str] = []
