"""``/soc``: logs and alerts -> detections, triage, cases with timelines and notes (issue #10's
pipeline, its schemas).

``POST /soc/run`` (or job ``soc-run``) takes the log files in the body (``UploadedFile``; zipped
OTRF exports and .evtx as ``content_b64``). Each run ingests into its own fresh DuckDB store in a
private temp dir; the result is the ``cases.json`` document of ``secfoundry soc run`` (each
case with ``id``, ``techniques``, ``alerts`` (+ triage), ``entities``, ``timeline`` and
``notes``) plus the run summary. A 100k-event ingest is a job.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI
from pydantic import BaseModel, Field

from secfoundry.serve.appkit import UploadedFile, operation, server_llm, write_uploads

TAG = "soc"


class SocRunRequest(BaseModel):
    files: list[UploadedFile] = Field(..., min_length=1, max_length=500)
    window_min: int = Field(120, ge=1, le=7 * 24 * 60, description="case grouping window (minutes)")
    min_score: float = Field(0.35, ge=0.0, le=1.0, description="alerts below this triage score open no case")
    hunting: bool = Field(False, description="also run Sigma rules marked for hunting")
    llm: Optional[str] = Field(None, description="null, or 'server' for the server's configured model")


class SocRunResult(BaseModel):
    summary: dict[str, Any] = Field(description="counts of the run (events, alerts, rules, cases, clock notes)")
    cases: list[dict[str, Any]] = Field(description="as `secfoundry soc run` writes cases.json: id, title, "
                                                    "severity, techniques, alerts (+triage), entities, grouping, "
                                                    "timeline [{time, event_ids, ...}], notes (Markdown), "
                                                    "notes_structured (soc.schemas.CaseNotes)")


def run_soc(ctx: Any, req: SocRunRequest, progress: Any) -> SocRunResult:
    from secfoundry.apps.soc.pipeline import open_kb, run

    progress(0.05, f"writing {len(req.files)} file(s)")
    tmp = write_uploads([(f.name, f.data()) for f in req.files])
    out = Path(tempfile.mkdtemp(prefix="sf-soc-"))
    try:
        kb = ctx.get("soc.kb", lambda c: open_kb(c.shared.kb_path))  # read-only KB connection of this thread
        progress(0.1, "ingest, detect, triage, cases")
        files = sorted(str(p) for p in tmp.iterdir())
        summary = run(files, out, kb=kb, llm=req.llm, window_min=req.window_min, min_score=req.min_score,
                      hunting=req.hunting, fresh=True)
        cases = json.loads((out / "cases.json").read_text())
        text = json.dumps({"summary": summary, "cases": cases}, default=str)
        text = text.replace(str(tmp) + "/", "").replace(str(out), "<run>")  # no server paths in the answer
        return SocRunResult.model_validate_json(text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


def _vet(svc: Any, body: SocRunRequest) -> SocRunRequest:
    return body.model_copy(update={"llm": server_llm(svc, body.llm)})


def mount(app: FastAPI, svc: Any) -> str:
    import secfoundry.apps.soc.pipeline  # noqa: F401 - not wired when the SOC app is absent

    operation(app, path="/soc/run", kind="soc-run", request_model=SocRunRequest, response_model=SocRunResult,
              fn=run_soc, tag=TAG, check=_vet,
              summary="Log/alert files -> detections, triage, cases with timeline and notes (cases.json)")
    from secfoundry.serve import ui_soc

    ui_soc.mount(app)
    return "available: soc-run"
