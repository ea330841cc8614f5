"""``/kb``: the knowledge base over HTTP. ``GET /kb/{id}`` returns exactly the JSON of
``secfoundry kb show ID --json``; ``/kb/search`` the JSON of ``kb search --json``."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from secfoundry.kb.rendered import entry_json
from secfoundry.serve.security import require_key

router = APIRouter(prefix="/kb", tags=["kb"], dependencies=[Depends(require_key)])

_ID_MAX = 200


def cli_json(obj: Any) -> Any:
    """The CLI prints ``json.dumps(obj, default=str)``; the same conversion gives the same JSON."""
    return json.loads(json.dumps(obj, ensure_ascii=False, default=str))


def _check_kb(request: Request) -> Any:
    svc = request.app.state.service
    if not svc.kb_exists():
        raise HTTPException(503, detail="knowledge base not synced on this server (secfoundry kb sync)")
    return svc


class ShowCache:
    """Rendered ``kb show`` JSON by id: (status, bytes), LRU bounded by total bytes, one per
    process, shared by the event loop and the worker threads. Entries of busy ids run to 100 KB
    of sections, so building and serialising them dominates a lookup; a hit is answered on the
    event loop without a thread hop (``GET /kb/{id}``). The cache is emptied when the KB changes:
    SQLite's ``PRAGMA data_version`` on the cache's own read-only connection moves whenever
    another connection (a ``kb sync``) commits. It is read at most every ``check_s`` seconds: a
    SQLite call releases the GIL, and on the event-loop thread getting it back can wait for a busy
    worker thread (the switch interval), so a hit makes no SQLite call at all in between. A sync's
    changes show within ``check_s``. A miss first tries the body ``kb sync`` materialised
    (``kb/rendered.py``), so even a first look-up of a hub id costs one indexed read."""

    def __init__(self, db: Path, max_bytes: int = 64 * 1024 * 1024, check_s: float = 0.5):
        import sqlite3

        self.max_bytes = max_bytes
        self.db = db
        self._local = threading.local()
        self._conns: list[Any] = []  # the worker threads' connections (closed with the cache)
        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
        self.lock = threading.Lock()
        self.items: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0
        self.check_s = check_s
        self.checked = time.monotonic()
        self.version = self._version()
        self.rendered_ok: bool | None = None  # rendered table current for this data_version (None: not checked)

    def _version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def get(self, key: str) -> tuple[int, bytes] | None:
        with self.lock:
            now = time.monotonic()
            if now - self.checked >= self.check_s:
                self.checked = now
                v = self._version()
                if v != self.version:
                    self.items.clear()
                    self.bytes = 0
                    self.version = v
                    self.rendered_ok = None
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return hit

    def rendered(self, key: str) -> bytes | None:
        """The entry's JSON from the KB's ``rendered`` table when that table is current (its stamp
        is checked once per KB change); None otherwise. Called by the route's worker threads and by
        ``FastLookup`` on the event loop, each on its own read-only connection (one indexed read,
        no lock held), so ``get`` never waits for it."""
        import sqlite3

        from secfoundry.kb import rendered

        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, check_same_thread=False)
            with self.lock:
                self._conns.append(conn)
        ok = self.rendered_ok
        if ok is None:
            ok = self.rendered_ok = rendered.is_current(conn)
        return rendered.lookup(conn, key) if ok else None

    def put(self, key: str, value: tuple[int, bytes]) -> None:
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.bytes -= len(old[1])
            if len(value[1]) > self.max_bytes // 4:
                return  # one huge entry would evict everything else
            self.items[key] = value
            self.bytes += len(value[1])
            while self.bytes > self.max_bytes:
                _, (_, raw) = self.items.popitem(last=False)
                self.bytes -= len(raw)

    def close(self) -> None:
        with self.lock:
            self.conn.close()
            for c in self._conns:
                c.close()
            self._conns.clear()


def show_cache(shared: Any) -> ShowCache:
    """The process's ``ShowCache`` (``shared`` is ``Service.shared`` or ``ctx.shared``)."""
    from secfoundry.kb import default_path
    from secfoundry.kb.sync import KBPaths

    return shared.get("kb.show_cache", lambda: ShowCache(KBPaths.at(shared.kb_path or default_path()).db))


def kb_show_bytes(ctx: Any, id: str) -> tuple[int, bytes]:
    """(status, JSON bytes): the entry as ``kb show --json`` prints it (one serialisation)."""
    cache = show_cache(ctx.shared)
    hit = cache.get(id)
    if hit is not None:
        return hit
    body = cache.rendered(id)  # materialised at sync time (kb/rendered.py): no build for a first look-up
    if body is not None:
        out = (200, body)
    else:
        code, obj = kb_show_obj(ctx, id)
        out = (code, entry_json(obj))
    cache.put(id, out)
    return out


def kb_show_obj(ctx: Any, id: str) -> tuple[int, Any]:
    """(status, the Entry dataclass or the 404 body): encode with ``kb.rendered.entry_json``."""
    entry = ctx.kb.show(id)
    if entry is None:
        from secfoundry.kb import ids as idmod

        check = idmod.validate(id)
        msg = f"{id!r} is not in the knowledge base" + ("" if check.syntax_ok else " (and is not a known id form)")
        return 404, {"error": msg, "id": check.canonical}
    return 200, entry


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
    svc = _check_kb(request)
    hit = show_cache(svc.shared).get(id)  # answered here, on the event loop, when cached
    code, raw = hit if hit is not None else await _run(request, kb_show_bytes, id)
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
