"""Request/response models of extract-ttps (shared by the Python API, the CLI and the HTTP service)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class Span(BaseModel):
    start: int = Field(description="character offset into the extracted report text")
    end: int
    text: str = Field(description="the quoted sentence")
    score: float = Field(0.0, description="this sentence's support for the technique (0..1)")


class TechniqueHit(BaseModel):
    id: str = Field(description="current ATT&CK technique or sub-technique id, validated against the KB")
    name: str
    confidence: float
    tactics: list[str] = []
    evidence: list[str] = Field([], description="kinds of evidence: explicit-id, name, model, llm")
    spans: list[Span] = []
    replaced: Optional[str] = Field(None, description="revoked/deprecated id written in the report, if mapped")


class EntityHit(BaseModel):
    id: str
    name: str
    type: str = Field(description="group | software | campaign")
    spans: list[Span] = []


class IgnoredSpan(BaseModel):
    start: int
    end: int
    text: str
    reason: str


class TTPRequest(BaseModel):
    text: str = Field(description="report text (Markdown/plain; HTML when format='html')", max_length=2_000_000)
    format: str = "auto"
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    domain: Optional[str] = Field(None, description="enterprise | mobile | ics; None = all")
    llm: Optional[str] = Field(None, description="model spec of an LLM that confirms/rejects candidates")


class TTPResult(BaseModel):
    techniques: list[TechniqueHit] = []
    groups: list[EntityHit] = []
    software: list[EntityHit] = []
    campaigns: list[EntityHit] = []
    attack_version: str = ""
    source: str = ""
    format: str = ""
    text_chars: int = 0
    sentences: int = 0
    ignored: list[IgnoredSpan] = Field([], description="sentences dropped as instructions to a model (hostile text)")
    unknown_ids: list[str] = Field([], description="technique-like ids in the text that the KB does not know")
    excluded_examples: int = Field(0, description="training examples withheld for leakage control")
    llm: Optional[dict] = None
    warnings: list[str] = []
