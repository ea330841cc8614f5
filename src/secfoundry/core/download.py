"""The one pinned downloader: retries with backoff, rate limits, conditional downloads.

Connectors (``sources``) and benchmark data (``eval.data``) both download through it.

``Fetcher`` wraps one ``httpx.Client``. What it adds over httpx, and why each connector needs it:

- retries on 429, 5xx and transport errors with exponential backoff and jitter, honouring
  ``Retry-After`` (NVD, GitHub and CISA all throttle);
- a minimum interval between requests per host (NVD documents 5 requests / 30 s without an
  API key, 50 with one);
- API keys taken from the environment and sent only to the host they belong to;
- ``download``: conditional GET with the ETag/Last-Modified stored in a ``<file>.meta.json``
  sidecar (a 304 keeps the cached file), atomic writes, sha256 verification of pinned files.
"""

from __future__ import annotations

import email.utils
from contextlib import AbstractContextManager
import hashlib
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import httpx

from secfoundry import __version__

DEFAULT_USER_AGENT = f"secfoundry/{__version__} (+https://github.com/secfoundry)"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchError(RuntimeError):
    """A request that failed for good (non-retryable status, or retries exhausted)."""

    def __init__(self, message: str, *, url: str, status: int | None = None, attempts: int = 0):
        self.url, self.status, self.attempts = url, status, attempts
        super().__init__(message)


class ChecksumError(FetchError):
    """A downloaded file does not match its pinned sha256."""


@dataclass(frozen=True)
class KeyRule:
    """Send the key in env var ``env`` as header ``header`` (formatted by ``fmt``) to ``host``.

    ``host`` matches the request host exactly or as a dot-suffix (``api.github.com``).
    """

    host: str
    env: str
    header: str
    fmt: str = "{key}"

    def matches(self, host: str) -> bool:
        return host == self.host or host.endswith("." + self.host)


DEFAULT_KEY_RULES: tuple[KeyRule, ...] = (
    KeyRule("services.nvd.nist.gov", "NVD_API_KEY", "apiKey"),
    KeyRule("api.github.com", "GITHUB_TOKEN", "Authorization", "Bearer {key}"),
)


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _meta_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".meta.json")


class Fetcher(AbstractContextManager):
    """HTTP client shared by all connectors of one sync.

    ``rate_limit`` is the minimum number of seconds between two requests to the same host: a
    number for every host, or a mapping host -> seconds (hosts not in it are not limited).
    ``retries`` counts the extra attempts after the first one.
    """

    def __init__(
        self,
        cache_dir: Path | str | None = None,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 120.0,
        rate_limit: float | Mapping[str, float] | None = None,
        headers: Mapping[str, str] | None = None,
        key_rules: tuple[KeyRule, ...] = DEFAULT_KEY_RULES,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.key_rules = tuple(key_rules)
        self._sleep = sleep
        self._rate: dict[str, float] = {}
        self._default_rate: float | None = None
        if isinstance(rate_limit, Mapping):
            self._rate.update({h: float(s) for h, s in rate_limit.items()})
        elif rate_limit is not None:
            self._default_rate = float(rate_limit)
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        base_headers = {"User-Agent": user_agent}
        base_headers.update(headers or {})
        self.client = httpx.Client(
            headers=base_headers, timeout=timeout, follow_redirects=True, transport=transport
        )
        self.requests_made = 0  # every attempt, for logs and tests

    # -- plumbing -------------------------------------------------------------------------
    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is None:
            from secfoundry.core.paths import cache_dir

            self._cache_dir = cache_dir("downloads")
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        return self._cache_dir

    def set_rate_limit(self, host: str, seconds: float | None) -> None:
        """Minimum interval between requests to ``host`` (None removes the limit)."""
        if seconds is None:
            self._rate.pop(host, None)
        else:
            self._rate[host] = float(seconds)

    def rate_limit_for(self, host: str) -> float | None:
        return self._rate.get(host, self._default_rate)

    def api_key(self, url: str) -> str | None:
        """The API key this fetcher would send to ``url``'s host, if its env var is set."""
        host = urlsplit(url).hostname or ""
        for rule in self.key_rules:
            if rule.matches(host) and os.environ.get(rule.env):
                return os.environ[rule.env]
        return None

    def _auth_headers(self, url: str) -> dict[str, str]:
        host = urlsplit(url).hostname or ""
        out: dict[str, str] = {}
        for rule in self.key_rules:
            key = os.environ.get(rule.env)
            if key and rule.matches(host):
                out[rule.header] = rule.fmt.format(key=key)
        return out

    def _throttle(self, host: str) -> None:
        interval = self.rate_limit_for(host)
        if not interval:
            return
        with self._lock:
            now = time.monotonic()
            wait = self._last.get(host, -1e18) + interval - now
            # Reserve the slot before sleeping so concurrent callers queue up behind us.
            self._last[host] = now + max(0.0, wait)
        if wait > 0:
            self._sleep(wait)

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            ra = _parse_retry_after(response.headers.get("Retry-After"))
            if ra is not None:
                return min(ra, self.max_backoff)
        base = self.backoff * (2**attempt)
        return min(self.max_backoff, base * random.uniform(0.5, 1.5))

    def _send(self, method: str, url: str, *, params: Any = None, headers: Mapping[str, str] | None = None,
              stream: bool = False) -> httpx.Response:
        """One request with retries; returns the (possibly streaming, unread) final response."""
        hdrs = self._auth_headers(url)
        hdrs.update(headers or {})
        host = urlsplit(url).hostname or ""
        attempts = self.retries + 1
        last_error: str = ""
        last_status: int | None = None
        for attempt in range(attempts):
            self._throttle(host)
            self.requests_made += 1
            response: httpx.Response | None = None
            try:
                request = self.client.build_request(method, url, params=params, headers=hdrs)
                response = self.client.send(request, stream=stream)
            except httpx.TransportError as e:
                last_error, last_status = f"{type(e).__name__}: {e}", None
            else:
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code >= 400:
                        body = _snippet(response)
                        raise FetchError(
                            f"GET {url} failed: HTTP {response.status_code} {response.reason_phrase}{body}",
                            url=url, status=response.status_code, attempts=attempt + 1,
                        )
                    return response
                last_error, last_status = f"HTTP {response.status_code} {response.reason_phrase}", response.status_code
                response.close()
            if attempt + 1 < attempts:
                self._sleep(self._delay(attempt, response))
        raise FetchError(
            f"GET {url} failed after {attempts} attempt(s): {last_error}",
            url=url, status=last_status, attempts=attempts,
        )

    # -- public API -----------------------------------------------------------------------
    def get(self, url: str, params: Any = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """GET with retries; raises ``FetchError`` on a non-retryable status or when retries run out."""
        return self._send("GET", url, params=params, headers=headers)

    def get_json(self, url: str, params: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        resp = self.get(url, params=params, headers={"Accept": "application/json", **(headers or {})})
        try:
            return resp.json()
        except ValueError as e:
            raise FetchError(f"GET {resp.url}: response is not valid JSON ({e})", url=str(resp.url),
                             status=resp.status_code) from e

    def download(self, url: str, dest: Path | str | None = None, *, sha256: str | None = None) -> Path:
        """Fetch ``url`` into ``dest`` (default: the cache dir, named after the URL's last part).

        Revalidates a cached copy with If-None-Match / If-Modified-Since; a 304 keeps it. With
        ``sha256`` pinned, a cached file that already matches is used without any request, and a
        download that does not match raises ``ChecksumError`` (the old file is left untouched).
        """
        dest = Path(dest) if dest is not None else self.cache_dir / (Path(urlsplit(url).path).name or "index")
        if not dest.is_absolute() and self._cache_dir is not None:
            dest = self._cache_dir / dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        meta_file = _meta_path(dest)
        meta = _read_meta(meta_file)
        pin = sha256.lower() if sha256 else None

        cached_ok = dest.is_file() and meta.get("url") == url
        if cached_ok and pin and meta.get("sha256") == pin and meta.get("size") == dest.stat().st_size:
            return dest  # pinned and already verified: immutable, nothing to ask
        cond: dict[str, str] = {}
        if cached_ok and (not pin or meta.get("sha256") == pin):
            if meta.get("etag"):
                cond["If-None-Match"] = meta["etag"]
            if meta.get("last_modified"):
                cond["If-Modified-Since"] = meta["last_modified"]

        attempts = self.retries + 1
        for attempt in range(attempts):
            resp = self._send("GET", url, headers=cond, stream=True)
            try:
                if resp.status_code == 304:
                    meta["checked_at"] = time.time()
                    _write_meta(meta_file, meta)
                    return dest
                tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
                h = hashlib.sha256()
                size = 0
                try:
                    with tmp.open("wb") as f:
                        for chunk in resp.iter_bytes(1 << 20):
                            f.write(chunk)
                            h.update(chunk)
                            size += len(chunk)
                    expected = resp.headers.get("Content-Length")
                    if expected and not resp.headers.get("Content-Encoding") and int(expected) != size:
                        raise httpx.ReadError(f"short read: {size} of {expected} bytes")
                except (httpx.TransportError, httpx.DecodingError) as e:
                    tmp.unlink(missing_ok=True)
                    if attempt + 1 >= attempts:
                        raise FetchError(f"GET {url}: download interrupted after {attempts} attempt(s): {e}",
                                         url=url, attempts=attempts) from e
                    self._sleep(self._delay(attempt, None))
                    continue
                digest = h.hexdigest()
                if pin and digest != pin:
                    tmp.unlink(missing_ok=True)
                    raise ChecksumError(f"GET {url}: sha256 {digest} does not match the pinned {pin}",
                                        url=url, status=resp.status_code)
                os.replace(tmp, dest)
                _write_meta(meta_file, {
                    "url": url,
                    "etag": resp.headers.get("ETag"),
                    "last_modified": resp.headers.get("Last-Modified"),
                    "sha256": digest,
                    "size": size,
                    "fetched_at": time.time(),
                    "checked_at": time.time(),
                })
                return dest
            finally:
                resp.close()
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.client.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    try:
        text = response.read().decode("utf-8", "replace").strip()
    except Exception:  # a body we cannot read adds nothing to the message
        return ""
    return f": {text[:limit]}" if text else ""


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def read_meta(dest: Path) -> dict[str, Any]:
    """The sidecar metadata of a downloaded file (url, etag, last_modified, sha256, ...)."""
    return _read_meta(_meta_path(Path(dest)))
