"""Unauthenticated system routes: liveness, readiness, the API docs page (assets served locally)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    ready: bool
    uptime_s: float
    kb: dict[str, Any]
    model: str | None
    loaded: dict[str, dict[str, Any]]
    warming: dict[str, str]
    apps: dict[str, str]
    jobs: dict[str, Any]
    batching: dict[str, dict[str, int]] = {}
    notes: list[str]


@router.get("/healthz", response_model=Health, summary="Liveness (no key needed)")
def healthz() -> Health:
    return Health()


@router.get("/readyz", response_model=Readiness, summary="Readiness: what is loaded (no key needed)")
def readyz(request: Request) -> Readiness:
    svc = request.app.state.service
    db = svc.kb_db_path()
    notes = []
    kb = {"path": str(db), "exists": db.exists()}
    if not db.exists():
        notes.append("knowledge base not synced: run `secfoundry kb sync --mirror DIR` (KB routes answer 503)")
    else:
        kb["bytes"] = db.stat().st_size
    if svc.keys.active_count() == 0:
        notes.append("no active API key: create one with `secfoundry serve keys add NAME`")
    notes.append("models load lazily on first use; `loaded` lists what is in memory")
    return Readiness(ready=True, uptime_s=round(time.time() - svc.started, 3), kb=kb, model=svc.config.model,
                     loaded=svc.loaded.snapshot(), warming=dict(svc.warming), apps=dict(svc.apps),
                     jobs={"counts": svc.jobs.counts(), "kinds": sorted(svc.jobs.kinds),
                           "recovered_at_start": svc.jobs.recovered},
                     batching={k: {"batches": b.batches, "items": b.items} for k, b in svc.batchers.items()},
                     notes=notes)


_DOCS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>secfoundry API</title>
<link rel="stylesheet" href="/static/swagger/swagger-ui.css">
<link rel="icon" href="/static/swagger/favicon.png"></head>
<body><div id="swagger-ui"></div>
<script src="/static/swagger/swagger-ui-bundle.js"></script>
<script src="/static/docs-init.js"></script>
</body></html>"""


def swagger_assets() -> Path | None:
    """Swagger UI 5 files shipped inside the ``fastapi-offline`` wheel (served, never fetched)."""
    try:
        import fastapi_offline

        p = Path(fastapi_offline.__file__).parent / "static"
        return p if (p / "swagger-ui-bundle.js").exists() else None
    except ImportError:
        return None


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def docs() -> HTMLResponse:
    if swagger_assets() is None:
        return HTMLResponse("<p>Swagger UI assets are not installed (pip install fastapi-offline); "
                            "the schema is at <a href='/openapi.json'>/openapi.json</a>.</p>")
    return HTMLResponse(_DOCS)
