"""Browser sessions for the web UI: login with an API key -> a random session id in an HttpOnly,
SameSite=Strict cookie (the key itself is never put in the cookie), plus a per-session CSRF
token that every UI form posts back. Sessions live in memory (a restart asks for a new login)
and end at logout, after ``ttl`` seconds, or as soon as the key behind them is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

COOKIE = "sf_session"


@dataclass
class Session:
    key_id: int
    key_name: str
    csrf: str
    expires: float


class Sessions:
    def __init__(self, ttl: float = 12 * 3600):
        self.ttl = ttl
        self._by_hash: dict[str, Session] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _h(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def create(self, key_id: int, key_name: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        s = Session(key_id, key_name, secrets.token_urlsafe(24), time.time() + self.ttl)
        with self._lock:
            self._by_hash[self._h(token)] = s
        return token, s

    def get(self, token: str | None) -> Session | None:
        if not token or len(token) > 200:
            return None
        with self._lock:
            s = self._by_hash.get(self._h(token))
            if s is not None and s.expires < time.time():
                del self._by_hash[self._h(token)]
                return None
            return s

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._by_hash.pop(self._h(token), None)
