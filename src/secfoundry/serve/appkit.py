"""Helpers the app endpoint groups share: one function per operation becomes both a synchronous
route (``POST /intel/extract-ttps``, request and response bodies are the app's own pydantic
models) and a job kind (``POST /jobs/extract-ttps``, same body, same result), so the schema is
written once, in ``apps/<app>/schemas*.py``.

Also: bad input (``InputError``) -> 422 naming the field; a client may not pick the LLM (a model
spec can name a server path or an internal URL): only the server's ``--model`` is used; upload
names are reduced to a safe base name inside a fresh temporary directory.

No ``from __future__ import annotations``: routes are built with real model annotations.
"""

import asyncio
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from secfoundry.serve.jobs import JobKind
from secfoundry.serve.keys import KeyInfo
from secfoundry.serve.security import require_key

try:
    from secfoundry.core.errors import InputError
except ImportError:  # pragma: no cover
    InputError = ValueError  # type: ignore[misc,assignment]


class UploadedFile(BaseModel):
    """A file sent in a JSON body (the service never reads files from its own disk): its text in
    ``content``, or its bytes base64-encoded in ``content_b64`` (zip archives, .evtx)."""

    name: str = Field(..., max_length=255, description="file name (used for type detection only)")
    content: Optional[str] = Field(None, description="the file's text")
    content_b64: Optional[str] = Field(None, description="the file's bytes, base64 (binary files)")

    def data(self) -> bytes:
        if self.content_b64 is not None:
            import base64
            import binascii

            try:
                return base64.b64decode(self.content_b64, validate=True)
            except (binascii.Error, ValueError):
                raise InputError(f"{self.name}: content_b64 is not valid base64", field="content_b64") from None
        if self.content is None:
            raise InputError(f"{self.name}: give content or content_b64", field="content")
        return self.content.encode("utf-8")


def input_error(e: Exception) -> HTTPException:
    field = getattr(e, "field", None) or "input"
    return HTTPException(422, detail=[{"loc": ["body", field], "msg": str(e), "type": "input_error"}])


def server_llm(svc: Any, requested: Optional[str]) -> Optional[str]:
    """The LLM a request may use: none, or exactly the server's configured ``--model``."""
    if requested in (None, ""):
        return None
    if svc.config.model and requested in (svc.config.model, "server"):
        return svc.config.model
    raise HTTPException(422, detail=[{
        "loc": ["body", "llm"], "type": "value_error",
        "msg": "this server does not let clients choose a model; use null, or 'server' for its configured model"
               + (f" ({svc.config.model})" if svc.config.model else " (none is configured: start with --model)")}])


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, used: set[str]) -> str:
    """A base name without directories, odd characters, or a leading dot; unique in ``used``."""
    base = _SAFE.sub("_", Path(str(name).replace("\\", "/")).name).lstrip(".") or "upload"
    base = base[:120]
    out, i = base, 1
    while out in used:
        i += 1
        out = f"{i}_{base}"
    used.add(out)
    return out


def write_uploads(files: list[tuple[str, bytes]]) -> Path:
    """Write uploads into a fresh private temp dir; returns the dir (caller removes it)."""
    d = Path(tempfile.mkdtemp(prefix="sf-upload-"))
    used: set[str] = set()
    for name, data in files:
        target = d / safe_name(name, used)
        assert target.parent == d  # by construction: no separators survive safe_name
        target.write_bytes(data)
    return d


async def call(request: Request, fn: Callable[..., Any], *args: Any) -> Any:
    svc = request.app.state.service
    try:
        return await svc.requests.run(fn, *args, timeout=svc.config.request_timeout_s)
    except asyncio.TimeoutError:
        raise HTTPException(504, detail=f"timed out after {svc.config.request_timeout_s:.0f} s: submit it as a job "
                                        "(POST /jobs/KIND) instead") from None
    except InputError as e:
        raise input_error(e) from None


async def call_batched(request: Request, batcher: Any, item: Any) -> Any:
    svc = request.app.state.service
    try:
        return await batcher.submit(item, timeout=svc.config.request_timeout_s)
    except asyncio.TimeoutError:
        raise HTTPException(504, detail=f"timed out after {svc.config.request_timeout_s:.0f} s: submit it as a job "
                                        "(POST /jobs/KIND) instead") from None
    except InputError as e:
        raise input_error(e) from None


def as_response(result: Any, response_model: type) -> Any:
    """An app's result of exactly the route's response model, serialised once by pydantic (FastAPI
    would validate it again and go through a dict); anything else is left to FastAPI."""
    if type(result) is response_model and isinstance(result, BaseModel):
        return Response(result.model_dump_json(by_alias=True).encode("utf-8"), media_type="application/json")
    return result


def operation(app: FastAPI, *, path: str, kind: str, request_model: type, response_model: type,
              fn: Callable[[Any, Any, Any], Any], summary: str, tag: str, sync: bool = True,
              check: Optional[Callable[[Any, Any], Any]] = None,
              batch: Optional[Callable[[Any, list], list]] = None) -> None:
    """Register ``fn(ctx, request, progress)`` as ``POST {path}`` (when ``sync``) and as job ``kind``.

    ``check(svc, request)`` runs before either (e.g. to vet the ``llm`` field) and may return a
    replacement request. ``batch(ctx, requests) -> results`` (same results as ``fn`` one by one):
    concurrent synchronous calls are coalesced into one call of it (``batching.Batcher``).
    """
    from secfoundry.serve.app import add_job_kind

    svc = app.state.service
    prepare = (lambda body: check(svc, body)) if check is not None else None

    def job_run(ctx: Any, req: Any, progress: Any) -> Any:
        return fn(ctx, req, progress)

    add_job_kind(app, JobKind(kind, request_model, job_run, summary, prepare))
    if not sync:
        return

    batcher = None
    if batch is not None:
        from secfoundry.serve.batching import Batcher

        batcher = Batcher(svc.requests, batch)
        svc.batchers[kind] = batcher

    async def run_sync(request: Request, body: request_model,  # type: ignore[valid-type]
                       key: KeyInfo = Depends(require_key)) -> Any:
        req = prepare(body) if prepare is not None else body
        if batcher is not None:
            return as_response(await call_batched(request, batcher, req), response_model)
        return as_response(await call(request, fn, req, lambda *a, **k: None), response_model)

    app.add_api_route(path, run_sync, methods=["POST"], response_model=response_model, tags=[tag], summary=summary,
                      name=kind.replace("-", "_"))
