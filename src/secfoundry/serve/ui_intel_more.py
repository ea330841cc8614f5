"""Web UI pages of the other intel operations, wired when the API has them:

* CVE description -> CWE mapping (``map-cwe``) or CVSS v3.1 vector (``predict-cvss``): ranked
  CWE candidates with their signals, matched terms and supporting labelled CVEs; the vector with
  base score, severity and each metric's probabilities;
* emulation plan (``emulate``): techniques, an ATT&CK group/software id or a report -> ordered
  steps with Atomic tests, Sigma rules, coverage and gaps, and the Navigator layer download.

Same pattern as the other pages: a form (session cookie + CSRF) submits a job of the API's own
kind with the API's own request model, the job page shows the result view when done.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response

from secfoundry.serve.security import require_ui
from secfoundry.serve.ui import env, render
from secfoundry.serve.ui_intel import _submit

_CVE = re.compile(r"^CVE-\d{4}-\d{4,7}$", re.I)
_TECH = re.compile(r"T\d{4}(?:\.\d{3})?", re.I)
PLATFORMS = ("", "windows", "linux", "macos")


def _error(request: Request, template: str, message: str, **ctx: Any) -> HTMLResponse:
    resp = render(request, template, error=message, **ctx)
    resp.status_code = 422
    return resp


def mount(app: FastAPI, wired: list[str]) -> None:
    nav = env.globals["nav"]
    cve_kinds = [k for k in ("map-cwe", "predict-cvss") if k in wired]
    if cve_kinds:
        nav.append(("/ui/intel/cve", "CVE → CWE / CVSS"))
    if "emulate" in wired:
        nav.append(("/ui/intel/emulate", "Emulation plan"))

    @app.get("/ui/intel/cve", response_class=HTMLResponse, include_in_schema=False)
    def cve_form(request: Request, _: Any = Depends(require_ui)) -> HTMLResponse:
        return render(request, "intel_cve_form.html", error="", kinds=cve_kinds)

    @app.post("/ui/intel/cve", include_in_schema=False)
    async def cve_submit(request: Request, _: Any = Depends(require_ui), description: str = Form(""),
                         cve_id: str = Form(""), task: str = Form("map-cwe")) -> Response:
        from pydantic import ValidationError

        from secfoundry.apps.intel.schemas import CveInput

        cve_id = cve_id.strip().upper()
        if task not in cve_kinds:
            return _error(request, "intel_cve_form.html", f"unknown task {task!r}", kinds=cve_kinds)
        if cve_id and not _CVE.match(cve_id):
            return _error(request, "intel_cve_form.html", f"{cve_id!r} is not a CVE id (CVE-YYYY-NNNN)", kinds=cve_kinds)
        try:
            body = CveInput(id=cve_id or None, description=description.strip())
        except ValidationError:
            return _error(request, "intel_cve_form.html", "paste the CVE description (up to the size limit)",
                          kinds=cve_kinds)
        return _submit(request, task, body)

    @app.get("/ui/intel/emulate", response_class=HTMLResponse, include_in_schema=False)
    def emulate_form(request: Request, _: Any = Depends(require_ui)) -> HTMLResponse:
        return render(request, "intel_emulate_form.html", error="", platforms=PLATFORMS)

    @app.post("/ui/intel/emulate", include_in_schema=False)
    async def emulate_submit(request: Request, _: Any = Depends(require_ui), techniques: str = Form(""),
                             entity: str = Form(""), report_text: str = Form(""), platform: str = Form(""),
                             max_tests: int = Form(3)) -> Response:
        from pydantic import ValidationError

        from secfoundry.apps.intel.schemas_emulate import EmulationRequest

        ids = [t.upper() for t in _TECH.findall(techniques)]
        leftover = _TECH.sub(" ", techniques).replace(",", " ").split()
        if leftover:
            return _error(request, "intel_emulate_form.html", "techniques: give ATT&CK ids such as T1059.001 "
                          f"(not understood: {' '.join(leftover[:5])})", platforms=PLATFORMS)
        if platform not in PLATFORMS:
            return _error(request, "intel_emulate_form.html", f"unknown platform {platform!r}", platforms=PLATFORMS)
        if not (ids or entity.strip() or report_text.strip()):
            return _error(request, "intel_emulate_form.html", "give techniques, a group/software id, or a report",
                          platforms=PLATFORMS)
        try:
            body = EmulationRequest(techniques=ids, entity=entity.strip() or None,
                                    report_text=report_text.strip() or None, platform=platform or None,
                                    max_tests=min(max(max_tests, 0), 10))
        except ValidationError as e:
            return _error(request, "intel_emulate_form.html", str(e.errors()[0]["msg"]), platforms=PLATFORMS)
        return _submit(request, "emulate", body)

    def cwe_view(request: Request, job: dict, params: dict, result: dict) -> HTMLResponse:
        return render(request, "intel_cwe_result.html", job=job, params=params, result=result)

    def cvss_view(request: Request, job: dict, params: dict, result: dict) -> HTMLResponse:
        return render(request, "intel_cvss_result.html", job=job, params=params, result=result)

    def emulate_view(request: Request, job: dict, params: dict, result: dict) -> HTMLResponse:
        return render(request, "intel_emulate_result.html", job=job, params=params, result=result)

    if "map-cwe" in cve_kinds:
        app.state.job_views["map-cwe"] = cwe_view
    if "predict-cvss" in cve_kinds:
        app.state.job_views["predict-cvss"] = cvss_view
    if "emulate" in wired:
        app.state.job_views["emulate"] = emulate_view
