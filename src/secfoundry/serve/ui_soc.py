"""Web UI page of the SOC app: upload logs -> cases with timeline, techniques and notes."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from secfoundry.serve.security import require_ui
from secfoundry.serve.ui import env, render
from secfoundry.serve.ui_intel import MAX_UPLOAD, _submit


def markdown_html(text: str) -> Any:
    """Case notes (Markdown, with attacker-controlled strings inside) -> safe HTML."""
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    md = MarkdownIt("commonmark", {"html": False, "linkify": False})  # raw HTML in the notes is escaped
    return Markup(md.render(text or ""))


def mount(app: FastAPI) -> None:
    env.globals["nav"].append(("/ui/soc", "Logs → cases"))
    env.filters["markdown"] = markdown_html

    @app.get("/ui/soc", response_class=HTMLResponse, include_in_schema=False)
    def soc_form(request: Request, _: Any = Depends(require_ui)) -> HTMLResponse:
        return render(request, "soc_form.html", error="")

    @app.post("/ui/soc", include_in_schema=False)
    async def soc_submit(request: Request, _: Any = Depends(require_ui),
                         uploads: list[UploadFile] = File(default_factory=list),
                         min_score: float = Form(0.35), window_min: int = Form(120)) -> Response:
        from secfoundry.serve.app_soc import SocRunRequest
        from secfoundry.serve.appkit import UploadedFile

        files = []
        for up in uploads[:100]:
            if up.filename:
                data = await up.read(MAX_UPLOAD + 1)
                if len(data) <= MAX_UPLOAD:
                    files.append(UploadedFile(name=up.filename, content_b64=base64.b64encode(data).decode()))
        if not files:
            resp = render(request, "soc_form.html", error="choose one or more log files")
            resp.status_code = 422
            return resp
        return _submit(request, "soc-run", SocRunRequest(files=files, min_score=min(max(min_score, 0.0), 1.0),
                                                         window_min=min(max(window_min, 1), 7 * 24 * 60)))

    def view(request: Request, job: dict, params: dict, result: dict) -> HTMLResponse:
        return render(request, "soc_result.html", job=job, result=result, files=[f["name"] for f in params["files"]])

    app.state.job_views["soc-run"] = view
