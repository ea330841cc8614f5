"""Browser sessions for the web UI: login with an API key -> a random session id in an HttpOnly,
SameSite=Strict cookie (the key itself is never put in the cookie), plus a per-session CSRF
token that every UI form posts back.

Sessions persist in ``serve.sqlite`` (table ``ui_sessions``), so a server restart does not log
analysts out. Only the sha256 of the session id is stored (the cookie alone opens the session;
the table alone does not); the CSRF token is stored as is (pages must render it, and it is
useless without the cookie). A session ends at logout, after ``ttl`` seconds, or as soon as
the key behind it is revoked (``KeyStore.revoke`` deletes its sessions; ``get`` also checks).
Expired rows are purged at start and at each login.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from secfoundry.serve.db import ServeDB

COOKIE = "sf_session"


@dataclass
class Session:
    key_id: int
    key_name: str
    csrf: str
    expires: float


class Sessions:
    def __init__(self, db: ServeDB, ttl: float = 12 * 3600):
        self.db = db
        self.ttl = ttl
        self.purge()

    @staticmethod
    def _h(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def purge(self) -> int:
        return self.db.execute("DELETE FROM ui_sessions WHERE expires < ?", (time.time(),)).rowcount

    def create(self, key_id: int, key_name: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        s = Session(key_id, key_name, secrets.token_urlsafe(24), time.time() + self.ttl)
        self.purge()
        self.db.execute("INSERT INTO ui_sessions(token_hash, key_id, key_name, csrf, created, expires) "
                        "VALUES (?,?,?,?,?,?)", (self._h(token), key_id, key_name, s.csrf, time.time(), s.expires))
        return token, s

    def get(self, token: str | None) -> Session | None:
        """The live session for this cookie value, or None (unknown, expired, or its key revoked)."""
        if not token or len(token) > 200:
            return None
        rows = self.db.query("SELECT s.key_id, s.key_name, s.csrf, s.expires, k.revoked FROM ui_sessions s "
                             "LEFT JOIN api_keys k ON k.id = s.key_id WHERE s.token_hash=?", (self._h(token),))
        if not rows:
            return None
        r = rows[0]
        if r["expires"] < time.time() or r["revoked"] is not None or r["key_id"] is None:
            self.end(token)
            return None
        return Session(r["key_id"], r["key_name"], r["csrf"], r["expires"])

    def end(self, token: str | None) -> None:
        if token:
            self.db.execute("DELETE FROM ui_sessions WHERE token_hash=?", (self._h(token),))

    def end_for_key(self, key_id: int) -> int:
        return self.db.execute("DELETE FROM ui_sessions WHERE key_id=?", (key_id,)).rowcount
