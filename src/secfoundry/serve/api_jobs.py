"""``/jobs``: long work in the background. ``POST /jobs/{kind}`` (typed body per kind) -> job;
``GET /jobs/{id}`` status and progress; ``GET /jobs/{id}/result``; retry and cancel.

Jobs are private to the key *name* that submitted them (a rotated key with the same name keeps
access). Deliberately no ``from __future__ import annotations``: the per-kind routes are built
with the request model as a real annotation so OpenAPI shows each kind's schema.
"""

import re
from typing import Any, Optional

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from secfoundry.serve.jobs import JobKind
from secfoundry.serve.keys import KeyInfo
from secfoundry.serve.security import require_key

JOB_ID = r"^job_[0-9a-f]{16}$"
_JOB_ID_RE = re.compile(JOB_ID)


class Job(BaseModel):
    id: str
    kind: str
    owner: str
    status: str
    progress: float
    message: str
    error: Optional[str] = None
    attempts: int
    created: float
    started: Optional[float] = None
    finished: Optional[float] = None
    has_result: bool
    retry_of: Optional[str] = None


router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_key)])


def _owned(request: Request, jid: str, key: KeyInfo) -> dict[str, Any]:
    if not _JOB_ID_RE.match(jid):
        raise HTTPException(422, detail="job id must look like job_<16 hex digits>")
    job = request.app.state.service.jobs.get(jid)
    if job is None or job["owner"] != key.name:
        raise HTTPException(404, detail=f"no job {jid}")
    request.state.job = jid
    return job


@router.get("", response_model=list[Job], summary="This key's jobs, newest first")
def list_jobs(request: Request, key: KeyInfo = Depends(require_key)) -> list[dict[str, Any]]:
    return request.app.state.service.jobs.list(owner=key.name)


@router.get("/{job_id}", response_model=Job, summary="Status and progress")
def get_job(request: Request, job_id: str = Path(..., pattern=JOB_ID), key: KeyInfo = Depends(require_key)) -> Any:
    return _owned(request, job_id, key)


@router.get("/{job_id}/result", summary="The result (409 until the job is done)")
def job_result(request: Request, job_id: str = Path(..., pattern=JOB_ID),
               key: KeyInfo = Depends(require_key)) -> JSONResponse:
    job = _owned(request, job_id, key)
    if job["status"] != "done":
        raise HTTPException(409, detail=f"job is {job['status']}" + (f": {job['error']}" if job["error"] else ""))
    return JSONResponse(request.app.state.service.jobs.result(job_id))


@router.post("/{job_id}/retry", response_model=Job, summary="Run an interrupted, failed or cancelled job again")
def retry_job(request: Request, job_id: str = Path(..., pattern=JOB_ID), key: KeyInfo = Depends(require_key)) -> Any:
    _owned(request, job_id, key)
    try:
        return request.app.state.service.jobs.retry(job_id)
    except ValueError as e:
        raise HTTPException(409, detail=str(e)) from None


@router.delete("/{job_id}", response_model=Job, summary="Cancel a queued or running job")
def cancel_job(request: Request, job_id: str = Path(..., pattern=JOB_ID), key: KeyInfo = Depends(require_key)) -> Any:
    _owned(request, job_id, key)
    return request.app.state.service.jobs.cancel(job_id)


def add_kind_route(app: FastAPI, kind: JobKind) -> None:
    """``POST /jobs/{kind.name}`` taking ``kind.request`` as its JSON body."""
    model = kind.request

    def submit(request: Request, body: model, key: KeyInfo = Depends(require_key)) -> Any:  # type: ignore[valid-type]
        if kind.prepare is not None:
            body = kind.prepare(body)
        job = request.app.state.service.jobs.submit(kind.name, body, owner=key.name)
        request.state.job = job["id"]
        return JSONResponse(job, status_code=202, headers={"Location": f"/jobs/{job['id']}"})

    app.add_api_route(f"/jobs/{kind.name}", submit, methods=["POST"], status_code=202, response_model=Job,
                      tags=["jobs"], summary=f"Submit a {kind.name} job" + (f": {kind.summary}" if kind.summary else ""),
                      name=f"submit_{kind.name.replace('-', '_')}")
