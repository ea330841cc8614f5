"""A loopback HTTP server for testing live-mode connector code without the internet.

``http_server`` (function-scoped) serves files from ``server.root`` on 127.0.0.1 (port 0) and
can be scripted per path:

- static files with ETag and Last-Modified; conditional requests answer 304;
- ``server.fail(path, [429, 503], retry_after="0")``: the next requests to ``path`` get these
  statuses (then the real answer);
- ``server.route(path, handler)``: ``handler(req) -> (status, headers, body)`` for dynamic
  answers such as paged APIs; ``req`` is a ``Req`` with ``path``, ``query`` (dict of first
  values), ``headers`` (lower-case keys);
  (a handler that sets Content-Length larger than its body simulates an interrupted transfer);
- ``server.paged_json(path, items, ...)``: a ready-made startIndex/resultsPerPage API;
- ``server.requests``: every request seen (``Req``), for asserting on headers and paging.

Usage: ``url = http_server.url("/dir/file.json.gz")`` after placing files under
``http_server.root`` (or ``http_server.add_file("dir/file", b"...")``).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


Handler = Callable[[Req], tuple[int, dict[str, str], bytes]]


@dataclass
class LoopbackServer:
    root: Path
    requests: list[Req] = field(default_factory=list)
    routes: dict[str, Handler] = field(default_factory=dict)
    failures: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    last_modified: str = "Wed, 01 Jan 2025 00:00:00 GMT"
    etags: bool = True
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- scripting --------------------------------------------------------------------------
    @property
    def base(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    def add_file(self, rel: str, data: bytes | str) -> Path:
        p = self.root / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    def fail(self, path: str, statuses: list[int], *, retry_after: str | None = None,
             headers: dict[str, str] | None = None) -> None:
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["Retry-After"] = retry_after
        self.failures.setdefault("/" + path.lstrip("/"), []).extend((s, hdrs) for s in statuses)

    def route(self, path: str, handler: Handler) -> None:
        self.routes["/" + path.lstrip("/")] = handler

    def paged_json(self, path: str, items: list[Any], *, items_key: str = "vulnerabilities",
                   start_param: str = "startIndex", size_param: str = "resultsPerPage",
                   max_size: int = 2000, extra: Callable[[Req], dict[str, Any]] | None = None,
                   filter_fn: Callable[[Req, Any], bool] | None = None) -> None:
        """An NVD-style paged JSON API over ``items`` (optionally filtered per request)."""

        def handler(req: Req) -> tuple[int, dict[str, str], bytes]:
            start = int(req.query.get(start_param, 0))
            size = min(int(req.query.get(size_param, max_size)), max_size)
            chosen = [it for it in items if filter_fn is None or filter_fn(req, it)]
            body = {
                size_param: len(chosen[start:start + size]),
                start_param: start,
                "totalResults": len(chosen),
                "format": "NVD_CVE",
                "version": "2.0",
                "timestamp": "2025-01-01T00:00:00.000",
                items_key: chosen[start:start + size],
            }
            if extra:
                body.update(extra(req))
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

        self.route(path, handler)

    def requests_to(self, path: str) -> list[Req]:
        path = "/" + path.lstrip("/")
        return [r for r in self.requests if r.path == path]

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "LoopbackServer":
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                req = Req("GET", parts.path, query, {k.lower(): v for k, v in self.headers.items()})
                server.requests.append(req)
                queue = server.failures.get(parts.path)
                if queue:
                    status, hdrs = queue.pop(0)
                    return self._send(status, hdrs, f"scripted failure {status}".encode())
                if parts.path in server.routes:
                    status, hdrs, body = server.routes[parts.path](req)
                    return self._send(status, hdrs, body)
                return self._static(parts.path, req)

            def _static(self, path: str, req: Req) -> None:
                file = (server.root / path.lstrip("/")).resolve()
                if server.root.resolve() not in file.parents or not file.is_file():
                    return self._send(404, {}, b"not found")
                data = file.read_bytes()
                etag = '"' + hashlib.sha1(data).hexdigest() + '"'
                hdrs = {"Last-Modified": server.last_modified}
                if server.etags:
                    hdrs["ETag"] = etag
                inm = req.headers.get("if-none-match")
                ims = req.headers.get("if-modified-since")
                if server.etags and inm is not None:
                    if inm == etag:
                        return self._send(304, hdrs, b"")
                elif ims is not None:
                    since = email.utils.parsedate_to_datetime(ims)
                    if since >= email.utils.parsedate_to_datetime(server.last_modified):
                        return self._send(304, hdrs, b"")
                return self._send(200, {**hdrs, "Content-Type": "application/octet-stream"}, data)

            def _send(self, status: int, hdrs: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                if any(k.lower() == "content-length" for k in hdrs):
                    # A handler that states its own length may be simulating a cut-off transfer:
                    # close the connection after the body so the client sees the short read.
                    self.close_connection = True
                elif status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304 and body:
                    self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


@pytest.fixture
def http_server(tmp_path: Path):
    """A started ``LoopbackServer`` serving ``tmp_path / "www"``."""
    root = tmp_path / "www"
    root.mkdir()
    server = LoopbackServer(root=root).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_fetcher(tmp_path: Path):
    """A ``Fetcher`` that records its back-off sleeps instead of sleeping (fast retry tests)."""
    from secfoundry.core.download import Fetcher

    sleeps: list[float] = []
    f = Fetcher(tmp_path / "dl", retries=3, backoff=0.01, sleep=sleeps.append, timeout=10.0)
    f.sleeps = sleeps  # type: ignore[attr-defined]
    try:
        yield f
    finally:
        f.close()
