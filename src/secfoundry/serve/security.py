"""Request security: API-key auth (Bearer, or the UI's session cookie), per-key rate limits,
body size limits (413), slow-body timeouts (408), security headers, and the audit line.

``Guard`` is one pure ASGI middleware (it must see every request, including the ones routing
rejects); ``require_key`` / ``require_ui`` are FastAPI dependencies so OpenAPI shows the bearer
scheme on every protected route.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from secfoundry.serve.keys import KeyInfo
from secfoundry.serve.ratelimit import retry_after_header
from secfoundry.serve.sessions import COOKIE

bearer = HTTPBearer(auto_error=False, description="An API key from `secfoundry serve keys add NAME`.")

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
CSP_DOCS = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")  # swagger-ui sets inline styles
BODY_READ_TIMEOUT_S = 30.0


def _service(request: Request) -> Any:
    return request.app.state.service


def _rate(request: Request, who: KeyInfo) -> None:
    wait = _service(request).limiter.check(f"key:{who.id}")
    if wait > 0:
        raise HTTPException(429, detail=f"rate limit for key {who.name!r} exceeded; retry in {wait:.1f} s",
                            headers={"Retry-After": retry_after_header(wait)})


def _identify(request: Request, who: KeyInfo) -> None:
    request.state.who = f"{who.name}({who.prefix})"
    request.state.key = who


async def require_key(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> KeyInfo:
    """API routes: ``Authorization: Bearer KEY``. Missing/wrong -> 401, revoked -> 403, over rate -> 429."""
    if creds is None or not creds.credentials:
        raise HTTPException(401, detail="missing API key: send 'Authorization: Bearer KEY'",
                            headers={"WWW-Authenticate": "Bearer"})
    verdict = _service(request).keys.verify(creds.credentials)
    if verdict.revoked:
        raise HTTPException(403, detail="this API key was revoked")
    if verdict.key is None:
        raise HTTPException(401, detail="invalid API key", headers={"WWW-Authenticate": "Bearer"})
    _identify(request, verdict.key)
    _rate(request, verdict.key)
    return verdict.key


class LoginRequired(Exception):
    """Raised by ``require_ui`` when no valid session: the app answers with a redirect to /ui/login."""


def ui_session(request: Request) -> Any:
    svc = _service(request)
    s = svc.sessions.get(request.cookies.get(COOKIE))
    if s is None:
        return None
    key = svc.keys.get(s.key_id)
    if key is None or not key.active:  # revoked since login (by another process: revoke deletes sessions)
        svc.sessions.end(request.cookies.get(COOKIE))
        return None
    return s, key


async def require_ui(request: Request) -> Any:
    """UI routes: the session cookie; POSTs must also carry the session's CSRF token."""
    found = ui_session(request)
    if found is None:
        raise LoginRequired()
    session, key = found
    _identify(request, key)
    _rate(request, key)
    if request.method == "POST":
        form = await request.form()
        if form.get("csrf") != session.csrf:
            raise HTTPException(403, detail="missing or stale CSRF token: reload the page")
    request.state.csrf = session.csrf
    return session


class Guard:
    """ASGI middleware: body limit, slow-body timeout, security headers, audit log."""

    def __init__(self, app: Any, service: Any):
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        limit = self.service.config.max_body_bytes
        info = {"status": 0, "bytes": 0}
        path = scope.get("path", "")

        async def send_wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
                headers = list(message.get("headers", []))
                names = {h[0].lower() for h in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"no-referrer"),
                         (b"content-security-policy", (CSP_DOCS if path.startswith("/docs") else CSP).encode())]
                if not path.startswith("/static"):
                    extra.append((b"cache-control", b"no-store"))
                headers += [h for h in extra if h[0] not in names]
                message = dict(message, headers=headers)
            elif message["type"] == "http.response.body":
                info["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            declared = dict(scope.get("headers") or []).get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                return await self._error(send_wrapped, 413, f"request body over the limit of {limit} bytes")
            body, more = bytearray(), True
            if scope.get("method") in ("POST", "PUT", "PATCH"):
                try:
                    async with asyncio.timeout(BODY_READ_TIMEOUT_S):
                        while more:
                            msg = await receive()
                            if msg["type"] == "http.disconnect":
                                return
                            body += msg.get("body", b"")
                            more = msg.get("more_body", False)
                            if len(body) > limit:
                                return await self._error(send_wrapped, 413,
                                                         f"request body over the limit of {limit} bytes")
                except TimeoutError:
                    return await self._error(send_wrapped, 408, "request body not received in time")
            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, send_wrapped)
        finally:
            state = scope.get("state") or {}
            client = scope.get("client") or ("", 0)
            if not path.startswith("/static"):
                self.service.audit.write(who=state.get("who", "-"), method=scope.get("method", ""), path=path,
                                         status=info["status"], bytes_out=info["bytes"],
                                         ms=(time.perf_counter() - t0) * 1000, client=str(client[0]),
                                         job=state.get("job"))

    @staticmethod
    async def _error(send: Any, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
