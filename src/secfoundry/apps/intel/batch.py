"""Batch and single-item runs of map-cwe / predict-cvss behind the CLI (and the service).

``resolve_single(arg)`` turns the CLI's positional argument into one ``CveInput``: a CVE id
(looked up), a CVE JSON 5 file, or the description text itself. ``run_batch`` reads JSONL(.gz),
writes one PRED line per good row and returns the per-row errors (file + row named).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from secfoundry.apps.intel.cve_index import is_cve_id
from secfoundry.apps.intel.inputs import cve_json5, read_cve_jsonl, resolve_cve_id
from secfoundry.apps.intel.schemas import MAX_TEXT_CHARS, CveInput
from secfoundry.core.errors import InputError


@dataclass
class BatchResult:
    written: int = 0
    errors: list[InputError] = field(default_factory=list)
    excluded: int = 0


def resolve_single(arg: str, records: str | None = None, kb_path: str | None = None
                   ) -> tuple[CveInput, list[str]]:
    """(input, CWE ids recorded for it when it was a known CVE id)."""
    s = arg.strip()
    if not s:
        raise InputError("empty input text", field="TEXT")
    if is_cve_id(s.upper()):
        return resolve_cve_id(s, records=records, kb_path=kb_path)
    if len(s) < 4096 and "\n" not in s and s.lower().endswith(".json") and Path(s).exists():
        return cve_json5(s), []
    if len(s) > MAX_TEXT_CHARS:
        raise InputError(f"text is {len(s):,} characters; the limit is {MAX_TEXT_CHARS:,}", field="TEXT")
    return CveInput(description=s), []


def run_batch(input_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
              predict: Callable[[list[CveInput]], list[Any]], to_line: Callable[[Any], dict[str, Any]],
              chunk: int = 512) -> BatchResult:
    rows, errors = read_cve_jsonl(input_path)
    res = BatchResult(errors=errors)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for s in range(0, len(rows), chunk):
            part = rows[s:s + chunk]
            preds = predict([it for _, it in part])
            for (row, it), p in zip(part, preds):
                line = to_line(p)
                if line.get("id") is None:
                    line["id"] = it.id or f"row-{row}"
                res.excluded += int(getattr(p, "excluded", 0))
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
                res.written += 1
    return res


def cwe_line(m: Any, evidence: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"id": m.id, "cwe": m.cwe, "scores": [c.score for c in m.candidates],
                         "names": [c.name for c in m.candidates], "excluded": m.excluded}
    if m.llm:
        d["llm"], d["llm_choice"] = m.llm, m.llm_choice
    if evidence:
        d["candidates"] = [c.model_dump() for c in m.candidates]
    if m.warnings:
        d["warnings"] = m.warnings
    return d


def cvss_line(p: Any, evidence: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"id": p.id, "vector": p.vector, "score": p.score, "severity": p.severity,
                         "expected_score": p.expected_score, "most_likely_vector": p.most_likely_vector,
                         "metrics": {m: {"value": v.value, "probability": v.probability}
                                     for m, v in p.metrics.items()}, "excluded": p.excluded}
    if evidence:
        d["metrics"] = {m: v.model_dump() for m, v in p.metrics.items()}
        d["neighbours"] = [n.model_dump() for n in p.neighbours]
    return d
