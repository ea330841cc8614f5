"""``/intel/map-cwe`` and ``/intel/predict-cvss`` (issue #12, I1): a CVE description (``CveInput``)
-> ranked KB-validated CWE ids (``CweMapping``) / a CVSS v3.1 vector (``CvssPrediction``), plus
batch jobs. One mapper and one predictor per process, shared by the worker threads: they hold
fitted arrays only (read-only after load), built on first use or by ``--warm``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from secfoundry.apps.intel.schemas import CveInput, CvssPrediction, CweMapping
from secfoundry.serve.appkit import operation

TAG = "intel"


class CveBatch(BaseModel):
    items: list[CveInput] = Field(..., min_length=1, max_length=50_000)


class CweBatchResult(BaseModel):
    results: list[CweMapping]


class CvssBatchResult(BaseModel):
    results: list[CvssPrediction]


def _kb(ctx: Any) -> str | None:
    return str(ctx.shared.kb_path) if ctx.shared.kb_path else None


def mapper(ctx: Any) -> Any:
    from secfoundry.apps.intel.cwe_map import CweMapper

    return ctx.shared.get("intel.map-cwe", lambda: CweMapper(kb_path=_kb(ctx)))


def predictor(ctx: Any) -> Any:
    from secfoundry.apps.intel.cvss_predict import CvssPredictor

    return ctx.shared.get("intel.predict-cvss", lambda: CvssPredictor(kb_path=_kb(ctx)))


def run_map(ctx: Any, req: CveInput, progress: Any) -> CweMapping:
    return mapper(ctx).map(req.description, req.id)


def run_cvss(ctx: Any, req: CveInput, progress: Any) -> CvssPrediction:
    return predictor(ctx).predict(req.description, req.id)


def map_batch(ctx: Any, reqs: list[CveInput]) -> list[CweMapping]:
    """Concurrent /intel/map-cwe calls in one ``map_many`` (items are mapped independently)."""
    return mapper(ctx).map_many([CveInput(id=r.id, description=r.description) for r in reqs])


def cvss_batch(ctx: Any, reqs: list[CveInput]) -> list[CvssPrediction]:
    return predictor(ctx).predict_many([CveInput(id=r.id, description=r.description) for r in reqs])


def _batched(fn_name: str, engine: Any, wrap: type) -> Any:
    def run(ctx: Any, req: CveBatch, progress: Any) -> Any:
        eng = engine(ctx)
        out: list[Any] = []
        step = 256
        for s in range(0, len(req.items), step):
            out += getattr(eng, fn_name)(req.items[s:s + step])
            progress(min(1.0, (s + step) / len(req.items)), f"{min(s + step, len(req.items))}/{len(req.items)}")
        return wrap(results=out)

    return run


def mount(app: FastAPI, svc: Any, missing: list[str]) -> list[str]:
    operation(app, path="/intel/map-cwe", kind="map-cwe", request_model=CveInput, response_model=CweMapping,
              fn=run_map, batch=map_batch, tag=TAG,
              summary="CVE description -> ranked CWE ids with scores and evidence")
    operation(app, path="/intel/predict-cvss", kind="predict-cvss", request_model=CveInput,
              response_model=CvssPrediction, fn=run_cvss, batch=cvss_batch, tag=TAG,
              summary="CVE description -> CVSS v3.1 vector with per-metric probabilities and base score")
    operation(app, path="/intel/map-cwe/batch", kind="map-cwe-batch", request_model=CveBatch,
              response_model=CweBatchResult, fn=_batched("map_many", mapper, CweBatchResult), tag=TAG, sync=False,
              summary="many CVE descriptions -> CWE mappings")
    operation(app, path="/intel/predict-cvss/batch", kind="predict-cvss-batch", request_model=CveBatch,
              response_model=CvssBatchResult, fn=_batched("predict_many", predictor, CvssBatchResult), tag=TAG,
              sync=False, summary="many CVE descriptions -> CVSS predictions")
    svc.warmers.append(("map-cwe model", lambda ctx: mapper(ctx)))
    svc.warmers.append(("predict-cvss model", lambda ctx: predictor(ctx)))
    return ["map-cwe", "predict-cvss"]
