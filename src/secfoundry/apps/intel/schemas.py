"""Request/response models of the intel apps (reused by the HTTP service, issue #17).

map-cwe and predict-cvss (engineer I1) are here; extract-ttps, prioritize and emulate add theirs.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

MAX_TEXT_CHARS = 20_000  # one description/request; longer text is refused (CVE descriptions ~300 chars)


class CveInput(BaseModel):
    """One item: a description, optionally with its CVE id (used for the leakage rule)."""

    id: str | None = None
    description: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class Neighbour(BaseModel):
    id: str  # a labelled CVE
    similarity: float
    cwe: list[str] = []
    cvss: str | None = None
    text: str = ""  # the first words of its description


class CweCandidate(BaseModel):
    id: str  # validated against the KB: current, never deprecated or unknown
    name: str
    score: float  # combined probability-like score, 0..1
    rank: int
    signals: dict[str, float] = {}  # classifier / neighbours / keyword / llm components
    usage: str = ""  # CWE mapping usage: Allowed, Allowed-with-Review, Discouraged, Prohibited
    abstraction: str = ""
    neighbours: list[Neighbour] = []  # labelled CVEs supporting this CWE
    matched_terms: list[str] = []  # CWE name / alternate-term words found in the description


class CweMapping(BaseModel):
    id: str | None = None
    cwe: list[str]  # ranked ids (the top one first)
    candidates: list[CweCandidate]
    excluded: int = 0  # index rows excluded by the leakage rule for this item
    recorded: list[str] = []  # the CWE the CVE record itself carries (id lookups only)
    llm: str | None = None  # model spec of the reranker, when one was used
    llm_choice: str | None = None
    warnings: list[str] = []


class MetricPrediction(BaseModel):
    value: str  # e.g. "N"
    probability: float
    probabilities: dict[str, float]


class CvssPrediction(BaseModel):
    id: str | None = None
    vector: str  # "CVSS:3.1/AV:N/..." chosen to minimise the expected base-score error
    score: float  # base score of ``vector`` (cvss library)
    severity: str
    expected_score: float  # probability-weighted mean base score
    most_likely_vector: str  # per-metric argmax
    metrics: dict[str, MetricPrediction]
    neighbours: list[Neighbour] = []
    excluded: int = 0
    warnings: list[str] = []


class BatchError(BaseModel):
    input: str
    row: int | None = None
    error: str
