"""``/kb``: the knowledge base over HTTP. ``GET /kb/{id}`` returns exactly the JSON of
``secfoundry kb show ID --json``; ``/kb/search`` the JSON of ``kb search --json``."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
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


class ShowCache:
    """Rendered ``kb show`` JSON by id (LRU), one per worker thread. Entries of busy ids run to
    100 KB of sections, so building and serialising them dominates a lookup. The cache is
    emptied when the KB changes: SQLite's ``PRAGMA data_version`` on this thread's connection
    moves whenever another connection (a ``kb sync``) commits."""

    def __init__(self, conn: Any, size: int = 2048):
        self.conn, self.size = conn, size
        self.items: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self.version = self._version()

    def _version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def get(self, key: str) -> tuple[int, bytes] | None:
        v = self._version()
        if v != self.version:
            self.items.clear()
            self.version = v
        hit = self.items.get(key)
        if hit is not None:
            self.items.move_to_end(key)
        return hit

    def put(self, key: str, value: tuple[int, bytes]) -> None:
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)


def kb_show_bytes(ctx: Any, id: str) -> tuple[int, bytes]:
    """(status, JSON bytes): the entry as ``kb show --json`` prints it (one serialisation)."""
    cache = ctx.get("kb.show_cache", lambda c: ShowCache(c.kb.store.conn))
    hit = cache.get(id)
    if hit is not None:
        return hit
    code, body = kb_show_obj(ctx, id)
    out = (code, json.dumps(body, ensure_ascii=False, default=str).encode("utf-8"))
    cache.put(id, out)
    return out


def kb_show_obj(ctx: Any, id: str) -> tuple[int, Any]:
    entry = ctx.kb.show(id)
    if entry is None:
        from secfoundry.kb import ids as idmod

        check = idmod.validate(id)
        msg = f"{id!r} is not in the knowledge base" + ("" if check.syntax_ok else " (and is not a known id form)")
        return 404, {"error": msg, "id": check.canonical}
    return 200, entry.to_dict()


def kb_show(ctx: Any, id: str) -> tuple[int, Any]:
    """(status, dict) for the UI pages."""
    code, raw = kb_show_bytes(ctx, id)
    return code, json.loads(raw)


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
    code, raw = await _run(request, kb_show_bytes, id)
    return Response(raw, status_code=code, media_type="application/json")


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
