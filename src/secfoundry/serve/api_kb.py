"""``/kb``: the knowledge base over HTTP. ``GET /kb/{id}`` returns exactly the JSON of
``secfoundry kb show ID --json``; ``/kb/search`` the JSON of ``kb search --json``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from secfoundry.serve.security import require_key

router = APIRouter(prefix="/kb", tags=["kb"], dependencies=[Depends(require_key)])

_ID_MAX = 200


def cli_json(obj: Any) -> Any:
    """The CLI prints ``json.dumps(obj, default=str)``; the same conversion gives the same JSON."""
    return json.loads(json.dumps(obj, ensure_ascii=False, default=str))


def _check_kb(request: Request) -> Any:
    svc = request.app.state.service
    if not svc.kb_db_path().exists():
        raise HTTPException(503, detail="knowledge base not synced on this server (secfoundry kb sync)")
    return svc


def kb_show(ctx: Any, id: str) -> tuple[int, Any]:
    entry = ctx.kb.show(id)
    if entry is None:
        from secfoundry.kb import ids as idmod

        check = idmod.validate(id)
        msg = f"{id!r} is not in the knowledge base" + ("" if check.syntax_ok else " (and is not a known id form)")
        return 404, {"error": msg, "id": check.canonical}
    return 200, cli_json(entry.to_dict())


def kb_search(ctx: Any, q: str, type_: str | None, k: int) -> list[Any]:
    ctx.kb_warm_searcher()
    return cli_json([h.to_dict() for h in ctx.kb.search(q, type=type_, k=k)])


async def _run(request: Request, fn: Any, *args: Any) -> Any:
    svc = _check_kb(request)
    try:
        return await svc.requests.run(fn, *args, timeout=svc.config.request_timeout_s)
    except asyncio.TimeoutError:
        raise HTTPException(504, detail=f"timed out after {svc.config.request_timeout_s:.0f} s") from None


@router.get("/search", summary="Hybrid search (BM25 + dense, RRF), as `kb search --json`")
async def search(request: Request, q: str = Query(..., min_length=1, max_length=2000),
                 type: str | None = Query(None, max_length=200, description="technique, cwe, cve, control, ..."),
                 k: int = Query(10, ge=1, le=100)) -> JSONResponse:
    return JSONResponse(await _run(request, kb_search, q, type, k))


@router.get("/status", summary="Sources, versions and counts, as `kb status --json`")
async def status(request: Request) -> JSONResponse:
    return JSONResponse(await _run(request, lambda ctx: cli_json(ctx.kb.status().to_dict())))


@router.get("/{id}", summary="Everything known about one id, as `kb show ID --json`",
            responses={404: {"description": "not in the KB: {error, id}, as the CLI prints"}})
async def show(request: Request, id: str) -> JSONResponse:
    if len(id) > _ID_MAX:
        raise HTTPException(422, detail=f"id longer than {_ID_MAX} characters")
    code, body = await _run(request, kb_show, id)
    return JSONResponse(body, status_code=code)


class SearchBatch(BaseModel):
    """Many KB searches in one background job."""

    queries: list[str] = Field(..., min_length=1, max_length=10_000)
    type: str | None = Field(None, max_length=200)
    k: int = Field(10, ge=1, le=100)


def run_search_batch(ctx: Any, req: SearchBatch, progress: Any) -> dict[str, Any]:
    ctx.kb_warm_searcher()
    out = []
    for i, q in enumerate(req.queries):
        out.append({"query": q, "hits": cli_json([h.to_dict() for h in ctx.kb.search(q, type=req.type, k=req.k)])})
        progress((i + 1) / len(req.queries), f"{i + 1}/{len(req.queries)} queries")
    return {"results": out}
