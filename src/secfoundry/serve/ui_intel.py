"""Web UI pages of the intel apps: a report -> highlighted spans + technique chips + Navigator
layer download; a CVE list or scanner report -> the prioritized table."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from secfoundry.serve.security import require_ui
from secfoundry.serve.ui import env, job_for_ui, render, run_ui

MAX_UPLOAD = 10 * 1024 * 1024


async def _read_upload(upload: UploadFile | None) -> tuple[str, bytes] | None:
    if upload is None or not upload.filename:
        return None
    data = await upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, detail=f"upload over {MAX_UPLOAD} bytes")
    return upload.filename, data


def _submit(request: Request, kind: str, body: Any) -> RedirectResponse:
    svc = request.app.state.service
    kinds = svc.jobs.kinds
    if kinds[kind].prepare is not None:
        body = kinds[kind].prepare(body)
    job = svc.jobs.submit(kind, body, owner=request.state.key.name)
    request.state.job = job["id"]
    return RedirectResponse(f"/ui/jobs/{job['id']}", status_code=303)


def highlight(text: str, techniques: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Split ``text`` into segments, each with the technique ids whose evidence spans cover it."""
    bounds = {0, len(text)}
    cover: list[tuple[int, int, str]] = []
    for t in techniques:
        for s in t.get("spans", []):
            a, b = max(0, int(s["start"])), min(len(text), int(s["end"]))
            if a < b:
                bounds |= {a, b}
                cover.append((a, b, t["id"]))
    cuts = sorted(bounds)
    out = []
    for a, b in zip(cuts, cuts[1:]):
        ids = sorted({tid for (x, y, tid) in cover if x <= a and b <= y})
        out.append((text[a:b], ids))
    return out


def mount(app: FastAPI, wired: list[str]) -> None:
    nav = env.globals["nav"]
    if "extract-ttps" in wired:
        nav.append(("/ui/intel/report", "Report → TTPs"))
    if "prioritize" in wired:
        nav.append(("/ui/intel/prioritize", "Vulnerabilities"))

    @app.get("/ui/intel/report", response_class=HTMLResponse, include_in_schema=False)
    def report_form(request: Request, _: Any = Depends(require_ui)) -> HTMLResponse:
        return render(request, "intel_report_form.html", error="")

    @app.post("/ui/intel/report", include_in_schema=False)
    async def report_submit(request: Request, _: Any = Depends(require_ui), text: str = Form(""),
                            upload: UploadFile | None = File(None), min_confidence: float = Form(0.35)) -> Response:
        from secfoundry.apps.intel.reports import load_report
        from secfoundry.apps.intel.schemas_ttps import TTPRequest
        from secfoundry.serve.appkit import safe_name

        up = await _read_upload(upload)
        try:
            if up is not None:  # PDF/HTML/Markdown upload -> text here; the job gets the text
                rep = await run_ui(request, lambda ctx: load_report(data=up[1], name=safe_name(up[0], set())))
                text = rep.text
            body = TTPRequest(text=text, format="auto", min_confidence=min(max(min_confidence, 0.0), 1.0))
            if not text.strip():
                raise ValueError("paste a report or choose a file")
        except ValueError as e:
            resp = render(request, "intel_report_form.html", error=str(e))
            resp.status_code = 422
            return resp
        return _submit(request, "extract-ttps", body)

    @app.get("/ui/intel/prioritize", response_class=HTMLResponse, include_in_schema=False)
    def prio_form(request: Request, _: Any = Depends(require_ui)) -> HTMLResponse:
        return render(request, "intel_prio_form.html", error="")

    @app.post("/ui/intel/prioritize", include_in_schema=False)
    async def prio_submit(request: Request, _: Any = Depends(require_ui), content: str = Form(""),
                          upload: UploadFile | None = File(None), exposure: str = Form(""),
                          criticality: str = Form("")) -> Response:
        from secfoundry.apps.intel.schemas_prioritize import PrioritizeRequest

        up = await _read_upload(upload)
        if up is not None:
            content = up[1].decode("utf-8", errors="replace")
        if not content.strip():
            resp = render(request, "intel_prio_form.html", error="paste a CVE list or scanner report, or choose a file")
            resp.status_code = 422
            return resp
        body = PrioritizeRequest(content=content, exposure=exposure or None, criticality=criticality or None,
                                 epss="none")
        return _submit(request, "prioritize", body)

    @app.get("/ui/jobs/{job_id}/navigator.json", include_in_schema=False)
    def navigator_download(request: Request, job_id: str, _: Any = Depends(require_ui)) -> Response:
        from secfoundry.serve.app_intel import layer_for

        job = job_for_ui(request, job_id)
        if job["status"] != "done":
            raise HTTPException(409, detail=f"job is {job['status']}")
        layer = layer_for(job["kind"], request.app.state.service.jobs.result(job_id))
        if layer is None:
            raise HTTPException(404, detail="no layer for this job")
        return JSONResponse(layer, headers={"Content-Disposition": f'attachment; filename="{job_id}-layer.json"'})

    def ttps_view(request: Request, job: dict, params: dict, result: dict) -> HTMLResponse:
        from secfoundry.apps.intel.schemas_ttps import TTPRequest
        from secfoundry.serve.app_intel import report_text

        text = report_text(TTPRequest.model_validate(params))
        return render(request, "intel_report_result.html", job=job, result=result,
                      segments=highlight(text, result.get("techniques", [])),
                      names={t["id"]: t["name"] for t in result.get("techniques", [])})

    def prio_view(request: Request, job: dict, params: dict, result: dict) -> HTMLResponse:
        return render(request, "intel_prio_result.html", job=job, result=result, params=params)

    app.state.job_views["extract-ttps"] = ttps_view
    app.state.job_views["prioritize"] = prio_view
    from secfoundry.serve import ui_intel_more

    ui_intel_more.mount(app, wired)  # map-cwe / predict-cvss and emulate pages
