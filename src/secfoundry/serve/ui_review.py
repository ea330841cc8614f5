"""Web UI page of the review app: upload configs or code -> findings."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from secfoundry.serve.security import require_ui
from secfoundry.serve.ui import env, render
from secfoundry.serve.ui_intel import MAX_UPLOAD, _submit

MAX_FILES = 200


def mount(app: FastAPI) -> None:
    env.globals["nav"].append(("/ui/review", "Config & code review"))

    @app.get("/ui/review", response_class=HTMLResponse, include_in_schema=False)
    def review_form(request: Request, _: Any = Depends(require_ui)) -> HTMLResponse:
        return render(request, "review_form.html", error="")

    @app.post("/ui/review", include_in_schema=False)
    async def review_submit(request: Request, _: Any = Depends(require_ui), kind: str = Form("config"),
                            uploads: list[UploadFile] = File(default_factory=list), text: str = Form(""),
                            name: str = Form("")) -> Response:
        from secfoundry.serve.app_review import ReviewUpload
        from secfoundry.serve.appkit import UploadedFile

        files: list[UploadedFile] = []
        for up in uploads[:MAX_FILES]:
            if not up.filename:
                continue
            data = await up.read(MAX_UPLOAD + 1)
            if len(data) <= MAX_UPLOAD:
                files.append(UploadedFile(name=up.filename, content=data.decode("utf-8", errors="replace")))
        if text.strip():
            files.append(UploadedFile(name=name.strip() or ("Dockerfile" if kind == "config" else "snippet.py"),
                                      content=text))
        if kind not in ("config", "code") or not files:
            resp = render(request, "review_form.html", error="choose files or paste one, and config or code")
            resp.status_code = 422
            return resp
        return _submit(request, f"review-{kind}", ReviewUpload(files=files))

    def view(request: Request, job: dict, params: dict, result: dict) -> HTMLResponse:
        return render(request, "review_result.html", job=job, result=result)

    app.state.job_views["review-config"] = view
    app.state.job_views["review-code"] = view
