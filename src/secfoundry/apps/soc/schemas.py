"""Typed request/response models of the SOC app (the HTTP service reuses them).

Field names follow ECS where ECS has one (``host.name``, ``source.ip``, ``process.command_line``);
pydantic aliases keep the dotted ECS spelling in JSON while Python uses snake_case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["true_positive", "false_positive", "undetermined"]
Severity = Literal["informational", "low", "medium", "high", "critical"]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class Event(_Model):
    """One normalized event. ``raw`` is the record exactly as read (attacker-controlled text)."""
    event_id: str = Field(description="stable hash of the source format and the raw record")
    timestamp: datetime | None = Field(None, alias="@timestamp")
    ts_note: str = ""  # "", "missing", "skew-corrected +4h00m", "unparseable: ..."
    format: str
    dataset: str = ""  # event.dataset: sysmon, security, zeek.conn, suricata.alert, ...
    kind: Literal["event", "alert"] = Field("event", alias="event.kind")
    category: str = Field("", alias="event.category")
    action: str = Field("", alias="event.action")
    code: str = Field("", alias="event.code")
    host_name: str = Field("", alias="host.name")
    user_name: str = Field("", alias="user.name")
    source_ip: str = Field("", alias="source.ip")
    source_port: int | None = Field(None, alias="source.port")
    destination_ip: str = Field("", alias="destination.ip")
    destination_port: int | None = Field(None, alias="destination.port")
    network_protocol: str = Field("", alias="network.protocol")
    process_pid: int | None = Field(None, alias="process.pid")
    process_entity_id: str = Field("", alias="process.entity_id")
    process_executable: str = Field("", alias="process.executable")
    process_command_line: str = Field("", alias="process.command_line")
    process_parent_entity_id: str = Field("", alias="process.parent.entity_id")
    process_parent_executable: str = Field("", alias="process.parent.executable")
    rule_id: str = Field("", alias="rule.id")  # native alerts: signature / rule / notice id
    rule_name: str = Field("", alias="rule.name")
    severity: int | None = Field(None, alias="event.severity")
    message: str = ""
    log_product: str = ""  # Sigma log source routing
    log_category: str = ""
    log_service: str = ""
    fields: dict[str, Any] = Field(default_factory=dict, description="flattened source fields (Sigma field names)")
    raw: str = ""
    file: str = ""
    line: int = 0


class RowError(_Model):
    file: str
    line: int
    error: str
    snippet: str = ""


class FileReport(_Model):
    file: str
    format: str
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    errors: int = 0
    missing_timestamps: int = 0
    skew_notes: list[str] = Field(default_factory=list)


class IngestReport(_Model):
    files: list[FileReport] = Field(default_factory=list)
    errors: list[RowError] = Field(default_factory=list, description="first errors (all are in the store)")
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    error_count: int = 0
    seconds: float = 0.0


class Alert(_Model):
    """A detection: a Sigma rule hit or a native alert (Suricata/Wazuh/Zeek notice)."""
    alert_id: str
    source: Literal["sigma", "suricata", "wazuh", "zeek", "ecs"]
    rule_id: str  # sigma:<uuid>, suricata:<sid>, wazuh:<id>, zeek:<note>
    rule_name: str
    level: str = ""
    techniques: list[str] = Field(default_factory=list)
    tactics: list[str] = Field(default_factory=list)
    event_ids: list[str]
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    host_name: str = ""
    user_name: str = ""
    source_ip: str = ""
    destination_ip: str = ""


class Triage(_Model):
    alert_id: str
    severity: Severity
    score: float = Field(ge=0.0, le=1.0, description="likelihood that the alert is a true positive")
    verdict: Verdict
    reason: str
    techniques: list[str] = Field(default_factory=list)
    tactics: list[str] = Field(default_factory=list)
    cves: list[str] = Field(default_factory=list)
    kev: list[str] = Field(default_factory=list)
    description: str = ""
    benign_hints: list[str] = Field(default_factory=list)
    method: str = "heuristic"  # heuristic | heuristic+llm:<spec>


class TimelineEntry(_Model):
    time: datetime | None
    event_ids: list[str]
    host: str = ""
    summary: str
    alert_ids: list[str] = Field(default_factory=list)


class Entity(_Model):
    kind: Literal["host", "user", "ip", "process"]
    value: str


class NoteSentence(_Model):
    text: str
    event_ids: list[str]


class CaseNotes(_Model):
    case_id: str
    method: str = "template"  # template | llm:<spec> | template (llm rejected: ...)
    summary: list[NoteSentence]
    entities: list[Entity]
    techniques: list[dict[str, Any]]  # {id, name, tactic} in kill-chain order
    evidence: list[NoteSentence]
    next_steps: list[dict[str, Any]]  # {id, name, kind: mitigation|d3fend, for}
    check: dict[str, Any] = Field(default_factory=dict)
    markdown: str = ""


class Case(_Model):
    id: str
    title: str
    techniques: list[str]
    tactics: list[str] = Field(default_factory=list)
    alerts: list[str]
    entities: list[Entity]
    grouping: list[str] = Field(description="why these alerts are one case")
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    severity: Severity = "low"
    score: float = 0.0
    timeline: list[TimelineEntry] = Field(default_factory=list)
    notes: CaseNotes | None = None


class RunSummary(_Model):
    ingest: IngestReport
    alerts: int
    sigma_rules: int
    sigma_rules_skipped: int
    cases: int
    out: str
