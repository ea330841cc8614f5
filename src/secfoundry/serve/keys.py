"""API keys: created once (shown once), stored as a sha256 hash, listed by name/prefix, revoked.

Keys are 256 random bits (``sf_`` + 43 url-safe characters), so an unsalted sha256 is the
right store (as GitHub/Stripe tokens): a brute force of the hash is as hard as guessing the
key, and the hash is the lookup index, so verification is one indexed query, not a scan.

Verdicts are cached in memory for ``VERIFY_CACHE_S`` seconds (by the key's hash), so a busy
client costs one sha256 per request, not a database query under the shared lock. A key revoked
through this process (the UI, the API, the server's own session key) stops working at once (the
cache is emptied); one revoked by another process (``secfoundry serve keys revoke`` while the
server runs) within ``VERIFY_CACHE_S`` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from secfoundry.serve.db import ServeDB

PREFIX = "sf_"
VERIFY_CACHE_S = 2.0
VERIFY_CACHE_MAX = 10_000  # distinct presented keys remembered (wrong ones too); emptied when full
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass
class KeyInfo:
    id: int
    name: str
    prefix: str
    created: float
    revoked: float | None
    last_used: float | None

    @property
    def active(self) -> bool:
        return self.revoked is None

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "prefix": self.prefix, "created": self.created,
                "revoked": self.revoked, "last_used": self.last_used, "active": self.active}


@dataclass
class Verdict:
    """Outcome of checking a presented key: ``key`` set when valid; ``revoked`` when it was, once."""

    key: KeyInfo | None
    revoked: bool = False


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    def __init__(self, db: ServeDB, cache_s: float = VERIFY_CACHE_S):
        self.db = db
        self.cache_s = cache_s
        self._last_touch: dict[int, float] = {}
        self._verified: dict[str, tuple[float, Verdict]] = {}  # sha256 -> (when checked, verdict)
        self._cache_lock = threading.Lock()

    def forget(self) -> None:
        """Empty the verdict cache (after any change to the keys made through this process)."""
        with self._cache_lock:
            self._verified.clear()

    def add(self, name: str) -> tuple[KeyInfo, str]:
        """A new key for ``name``; returns (info, the key). The key is not recoverable later."""
        if not _NAME.match(name):
            raise ValueError(f"key name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
        key = PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        cur = self.db.execute("INSERT INTO api_keys(name, prefix, hash, created) VALUES (?,?,?,?)",
                              (name, key[:8], _hash(key), now))
        self.forget()
        return KeyInfo(int(cur.lastrowid), name, key[:8], now, None, None), key

    def list(self, include_revoked: bool = True) -> list[KeyInfo]:
        rows = self.db.query("SELECT * FROM api_keys" + ("" if include_revoked else " WHERE revoked IS NULL")
                             + " ORDER BY id")
        return [KeyInfo(r["id"], r["name"], r["prefix"], r["created"], r["revoked"], r["last_used"]) for r in rows]

    def get(self, key_id: int) -> KeyInfo | None:
        rows = self.db.query("SELECT * FROM api_keys WHERE id=?", (key_id,))
        if not rows:
            return None
        r = rows[0]
        return KeyInfo(r["id"], r["name"], r["prefix"], r["created"], r["revoked"], r["last_used"])

    def active_count(self) -> int:
        return int(self.db.query("SELECT count(*) FROM api_keys WHERE revoked IS NULL")[0][0])

    def revoke(self, name_or_prefix: str) -> list[KeyInfo]:
        """Revoke every active key with this name, or the one whose prefix (``sf_xxxxx``) matches."""
        targets = [k for k in self.list(include_revoked=False)
                   if k.name == name_or_prefix or (name_or_prefix.startswith(PREFIX) and len(name_or_prefix) >= 6
                                                    and k.prefix.startswith(name_or_prefix[:8]))]
        now = time.time()
        for k in targets:
            self.db.execute("UPDATE api_keys SET revoked=? WHERE id=?", (now, k.id))
            self.db.execute("DELETE FROM ui_sessions WHERE key_id=?", (k.id,))  # its UI sessions end too
            k.revoked = now
        self.forget()
        return targets

    def verify(self, presented: str | None) -> Verdict:
        if not presented or not presented.startswith(PREFIX) or len(presented) > 200:
            return Verdict(None)
        h = _hash(presented)
        now = time.monotonic()
        hit = self._verified.get(h)
        if hit is not None and now - hit[0] < self.cache_s:
            verdict = hit[1]
        else:
            verdict = self._lookup(h)
            with self._cache_lock:
                if len(self._verified) >= VERIFY_CACHE_MAX:
                    self._verified.clear()
                self._verified[h] = (now, verdict)
        if verdict.key is not None:
            self._touch(verdict.key.id)
        return verdict

    def _lookup(self, h: str) -> Verdict:
        rows = self.db.query("SELECT * FROM api_keys WHERE hash=?", (h,))
        if not rows or not hmac.compare_digest(rows[0]["hash"], h):
            return Verdict(None)
        r = rows[0]
        info = KeyInfo(r["id"], r["name"], r["prefix"], r["created"], r["revoked"], r["last_used"])
        if info.revoked is not None:
            return Verdict(None, revoked=True)
        return Verdict(info)

    def _touch(self, key_id: int) -> None:
        now = time.time()
        if now - self._last_touch.get(key_id, 0) > 60:  # last_used at minute resolution: no write per request
            self._last_touch[key_id] = now
            self.db.execute("UPDATE api_keys SET last_used=? WHERE id=?", (now, key_id))
