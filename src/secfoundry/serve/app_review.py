"""``/review``: configuration review, secure-code review and compliance mapping over HTTP
(issue #11's Python API and schemas).

The app's ``ReviewRequest`` names paths to scan; a service must never scan its own disk, so the
HTTP body carries the files themselves (``ReviewUpload``: name + content). They are written to
a fresh private temp dir under safe base names, reviewed, and the temp path is stripped from the
result (``ReviewResult``, the app's own model). The review engines (checkov, semgrep) start in
seconds to tens of seconds, so reviews are jobs; compliance mapping is a synchronous call too.
"""

from __future__ import annotations

import shutil
from typing import Any, Optional

from fastapi import FastAPI
from pydantic import BaseModel, Field

from secfoundry.serve.appkit import UploadedFile, operation, server_llm, write_uploads

TAG = "review"
MAX_FILES = 2000


class ReviewUpload(BaseModel):
    """Files to review, sent in the body."""

    files: list[UploadedFile] = Field(..., min_length=1, max_length=MAX_FILES)
    engines: Optional[list[str]] = Field(None, description="restrict engines; null = all available")
    llm: Optional[str] = Field(None, description="null, or 'server' for the server's configured model")


def _kbmap(ctx: Any) -> Any:
    from secfoundry.apps.review.kbmap import KBMap

    return KBMap.open(ctx.shared.kb_path)  # one per call: it collects the ids it rejected for this run


def _review(kind: str) -> Any:
    def run(ctx: Any, req: ReviewUpload, progress: Any) -> Any:
        from secfoundry.apps.review.review import review_code, review_config
        from secfoundry.apps.review.schemas import ReviewRequest, ReviewResult

        progress(0.05, f"writing {len(req.files)} file(s)")
        tmp = write_uploads([(f.name, f.data()) for f in req.files])
        try:
            progress(0.1, "running the engines")
            app_req = ReviewRequest(kind=kind, paths=[str(tmp)], engines=req.engines, llm=req.llm, jobs=1)
            res = (review_code if kind == "code" else review_config)(app_req, kb=_kbmap(ctx))
            # no server path in what goes back: "<tmp>/Dockerfile" -> "Dockerfile"
            text = res.model_dump_json().replace(str(tmp) + "/", "").replace(str(tmp), "upload")
            return ReviewResult.model_validate_json(text)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return run


def run_compliance(ctx: Any, req: Any, progress: Any) -> Any:
    from secfoundry.apps.review.compliance import assess

    return assess(req, _kbmap(ctx))


def _vet(svc: Any, body: ReviewUpload) -> ReviewUpload:
    return body.model_copy(update={"llm": server_llm(svc, body.llm)})


def mount(app: FastAPI, svc: Any) -> str:
    from secfoundry.apps.review.schemas import ComplianceReport, ComplianceRequest, ReviewResult

    operation(app, path="/review/config", kind="review-config", request_model=ReviewUpload, response_model=ReviewResult,
              fn=_review("config"), tag=TAG, check=_vet,
              summary="Dockerfile / Kubernetes / Terraform / nginx / sshd / sysctl / sudoers / compose -> findings")
    operation(app, path="/review/code", kind="review-code", request_model=ReviewUpload, response_model=ReviewResult,
              fn=_review("code"), tag=TAG, check=_vet,
              summary="Source files -> findings with CWE ids, fixes and NIST 800-53 controls")
    operation(app, path="/review/compliance", kind="compliance", request_model=ComplianceRequest,
              response_model=ComplianceReport, fn=run_compliance, tag=TAG,
              summary="Findings or ATT&CK techniques -> NIST 800-53 rev5 control coverage")
    from secfoundry.serve import ui_review

    ui_review.mount(app)
    return "available: review-config, review-code, compliance"
