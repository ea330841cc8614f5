"""``/intel``: the threat-intel applications over HTTP (issue #12's Python API, its schemas).

Each operation is a synchronous route and a job kind with the same body and result (appkit).
Operations whose module is not in this checkout are left out (``/readyz`` says which).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse

from secfoundry.serve.appkit import operation, server_llm
from secfoundry.serve.keys import KeyInfo
from secfoundry.serve.security import require_key

TAG = "intel"


def embedder(ctx: Any) -> Any:
    """The query embedder shared by every thread (MiniLM loaded once)."""
    return ctx.shared.get("kb.embedder", lambda: ctx.kb.embedder)


def extractor(ctx: Any) -> Any:
    """The extract-ttps engine, built once per process and shared by the worker threads: after
    construction it reads only its in-memory catalog and vectors, never the KB connection it was
    built with. Calls go through a lock (its query-vector cache is a plain dict). Same engine
    settings as the CLI (the default representation), so the API and `intel extract-ttps` agree."""
    from secfoundry.apps.intel.ttps import TTPExtractor

    return ctx.shared.get("intel.extract-ttps", lambda: _Locked(TTPExtractor(ctx.kb)))


class _Locked:
    def __init__(self, engine: Any):
        import threading

        self.engine, self.lock = engine, threading.Lock()

    def extract(self, *args: Any, **kw: Any) -> Any:
        with self.lock:
            return self.engine.extract(*args, **kw)


def warm_extractor(ctx: Any) -> None:
    extractor(ctx)


# -- extract-ttps ------------------------------------------------------------------------------------
def run_extract(ctx: Any, req: Any, progress: Any) -> Any:
    from secfoundry.apps.intel.reports import load_report
    from secfoundry.apps.intel.ttps import ExtractOptions

    progress(0.05, "reading the report")
    rep = load_report(text=req.text, format=req.format, name="<request>")  # text only: never a server path
    progress(0.2, "loading the technique model" if "intel.extract-ttps" not in ctx.shared.objects else "extracting")
    ex = extractor(ctx)
    progress(0.4, "extracting techniques")
    return ex.extract(rep, ExtractOptions(min_confidence=req.min_confidence, domain=req.domain, llm=req.llm))


def report_text(req: Any) -> str:
    """The text the result's offsets refer to (what load_report made of the request)."""
    from secfoundry.apps.intel.reports import load_report

    return load_report(text=req.text, format=req.format, name="<request>").text


# -- prioritize --------------------------------------------------------------------------------------
def run_prioritize(ctx: Any, req: Any, progress: Any) -> Any:
    from secfoundry.apps.intel.prioritize import prioritize
    from secfoundry.apps.intel.vulnfeeds import read_vulns
    from secfoundry.core.errors import InputError

    if req.epss not in ("none", "live"):
        raise InputError("epss must be 'none' or 'live' (the service reads no local files)", field="epss")
    progress(0.1, "reading the list")
    vl = read_vulns(data=req.content.encode("utf-8"), format=req.format, name="<request>")
    progress(0.3, f"ranking {len(vl.items)} vulnerabilities")
    return prioritize(vl, kb=ctx.kb, epss=req.epss, exposure=req.exposure, criticality=req.criticality)


# -- emulate -----------------------------------------------------------------------------------------
def run_emulate(ctx: Any, req: Any, progress: Any) -> Any:
    from secfoundry.apps.intel.emulate import plan_for
    from secfoundry.apps.intel.reports import load_report

    techniques = list(req.techniques)
    quotes: dict[str, str] = {}
    if req.report_text:  # extracted here with this thread's engine (the app's shared cache is per-process)
        progress(0.2, "extracting techniques from the report")
        res = extractor(ctx).extract(load_report(text=req.report_text, name="<request>"))
        for h in res.techniques:
            techniques.append(h.id)
            quotes[h.id] = f"report: \"{h.spans[0].text[:160]}\"" if h.spans else "report"
    progress(0.6, "building the plan")
    plan = plan_for(techniques=techniques or None, entity=req.entity, platform=req.platform, kb=ctx.kb,
                    max_tests=req.max_tests, max_rules=req.max_rules)
    for step in plan.steps:
        if step.technique in quotes and step.source.startswith("input"):
            step.source = quotes[step.technique]
    return plan


def _vet_llm(svc: Any, body: Any) -> Any:
    return body.model_copy(update={"llm": server_llm(svc, body.llm)})


def mount(app: FastAPI, svc: Any) -> str:
    wired, missing = [], []
    import importlib

    # kind, schemas module, request model, response model, runner, summary, extra operation() options
    specs: list[tuple[str, str, str, str, Any, str, dict[str, Any]]] = [
        ("extract-ttps", "schemas_ttps", "TTPRequest", "TTPResult", run_extract,
         "Threat report text -> ATT&CK techniques with evidence spans", {"check": _vet_llm}),
        ("prioritize", "schemas_prioritize", "PrioritizeRequest", "PrioritizeResult", run_prioritize,
         "CVE list / CSV / Trivy / Grype / CycloneDX -> ranked table (CVSS, EPSS, KEV, SSVC)", {}),
        ("emulate", "schemas_emulate", "EmulationRequest", "EmulationPlan", run_emulate,
         "Techniques, an ATT&CK group/software id or a report -> emulation plan", {}),
    ]
    for kind, module, req, resp, fn, summary, extra in specs:
        try:
            mod = importlib.import_module(f"secfoundry.apps.intel.{module}")
            request_model, response_model = getattr(mod, req), getattr(mod, resp)
        except (ImportError, AttributeError) as e:
            missing.append(f"{kind} ({e})")
            continue
        operation(app, path=f"/intel/{kind}", kind=kind, request_model=request_model,
                  response_model=response_model, fn=fn, tag=TAG, summary=summary, **extra)
        wired.append(kind)
        if kind == "extract-ttps":
            svc.warmers.append(("extract-ttps model", warm_extractor))
    try:  # map-cwe / predict-cvss (issue #12, I1): wired once their module is in this checkout
        from secfoundry.serve import app_intel_cwe

        wired += app_intel_cwe.mount(app, svc, missing)
    except ImportError as e:
        missing.append(f"map-cwe, predict-cvss ({e})")
    if not wired:
        raise ImportError("; ".join(missing))
    app.add_api_route("/jobs/{job_id}/navigator", navigator, methods=["GET"], tags=["jobs"],
                      summary="ATT&CK Navigator layer of an extract-ttps or emulate job")
    from secfoundry.serve import ui_intel

    ui_intel.mount(app, wired)
    return "available: " + ", ".join(wired) + (f"; missing: {'; '.join(missing)}" if missing else "")


def layer_for(kind: str, result: Any) -> dict[str, Any] | None:
    if kind == "extract-ttps":
        from secfoundry.apps.intel.navigator import ttps_layer
        from secfoundry.apps.intel.schemas_ttps import TTPResult

        return ttps_layer(TTPResult.model_validate(result))
    if kind == "emulate":
        from secfoundry.apps.intel.emulate_report import to_layer
        from secfoundry.apps.intel.schemas_emulate import EmulationPlan

        return to_layer(EmulationPlan.model_validate(result))
    return None


def navigator(request: Request, job_id: str = Path(..., pattern=r"^job_[0-9a-f]{16}$"),
              key: KeyInfo = Depends(require_key)) -> JSONResponse:
    svc = request.app.state.service
    job = svc.jobs.get(job_id)
    if job is None or job["owner"] != key.name:
        raise HTTPException(404, detail=f"no job {job_id}")
    if job["status"] != "done":
        raise HTTPException(409, detail=f"job is {job['status']}")
    layer = layer_for(job["kind"], svc.jobs.result(job_id))
    if layer is None:
        raise HTTPException(404, detail=f"{job['kind']} jobs have no Navigator layer")
    return JSONResponse(layer, headers={"Content-Disposition": f'attachment; filename="{job_id}-layer.json"'})
