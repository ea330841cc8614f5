"""``FastLookup``: ``GET /kb/{id}`` answered from the rendered-entry cache at the ASGI layer.

A KB lookup is the service's hottest and cheapest call: once an entry is rendered (``ShowCache``)
answering it is a dictionary hit (or, the first time, one read of the entry ``kb sync``
materialised, ``kb/rendered.py``), and FastAPI's routing and dependency resolution cost several
times that. This middleware (inside ``Guard``: body limits, security headers and the audit line
apply as to every request) answers only the happy path itself: a valid Bearer key, a cached
entry, a token from the key's rate bucket. Everything else (no key, a wrong or revoked key, over
the rate, an id ``kb sync`` did not render under that spelling, a query string) goes on to the FastAPI route, which is the
one implementation of the errors and of rendering, and which then fills the cache. The bytes
sent are those the route sends for the same id (tested). The rate bucket is consulted only on a
hit, so a request falling through is counted once, by the route.
"""

from __future__ import annotations

from typing import Any

from secfoundry.serve.api_kb import _ID_MAX, show_cache

PREFIX = "/kb/"
RESERVED = ("search", "status")  # other routes under /kb/


class FastLookup:
    def __init__(self, app: Any, service: Any):
        self.app = app
        self.service = service
        self.served = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(PREFIX)
                and not scope.get("query_string")):
            hit = self._lookup(scope)
            if hit is not None:
                code, raw = hit
                self.served += 1
                await send({"type": "http.response.start", "status": code,
                            "headers": [(b"content-length", str(len(raw)).encode()),
                                        (b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": raw})
                return
        await self.app(scope, receive, send)

    def _lookup(self, scope: dict) -> tuple[int, bytes] | None:
        ident = scope["path"][len(PREFIX):]  # ASGI paths are already percent-decoded, as the route sees them
        if not ident or "/" in ident or ident in RESERVED or len(ident) > _ID_MAX:
            return None
        svc = self.service
        if not svc.kb_exists():
            return None
        cache = svc.shared.objects.get("kb.show_cache")
        if cache is None:  # nothing rendered yet: the route builds the cache
            return None
        auth = next((v for k, v in scope.get("headers") or () if k == b"authorization"), None)
        if auth is None or auth[:7].lower() != b"bearer ":
            return None
        verdict = svc.keys.verify(auth[7:].decode("latin-1").strip())
        if verdict.key is None:
            return None
        hit = cache.get(ident)
        if hit is None:
            # A first look-up of a canonical id: the body ``kb sync`` materialised (one indexed read
            # on this thread's own read-only connection, no routing, no thread hop).
            body = cache.rendered(ident)
            if body is not None:
                hit = (200, body)
                cache.put(ident, hit)
        if hit is None or svc.limiter.check(f"key:{verdict.key.id}") > 0:
            return None  # the route renders it / answers 429 with Retry-After
        key = verdict.key
        scope.setdefault("state", {})["who"] = f"{key.name}({key.prefix})"  # for the audit line
        return hit


__all__ = ["FastLookup", "show_cache"]
