"""The service's own SQLite database (``SECFOUNDRY_HOME/serve/serve.sqlite``): API keys, jobs and
UI sessions.

One connection shared by the threads of one process behind a lock (WAL mode, so a second
process such as ``secfoundry serve keys add`` can write while the server runs).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,            -- first characters of the key, to tell keys apart in listings
    hash TEXT NOT NULL UNIQUE,       -- sha256 of the whole key; the key itself is never stored
    created REAL NOT NULL,
    revoked REAL,                    -- time of revocation, NULL while valid
    last_used REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,             -- API key name that submitted it
    status TEXT NOT NULL,            -- queued | running | done | failed | interrupted | cancelled
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL,            -- JSON request (validated model dump)
    result TEXT,                     -- JSON result
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    retry_of TEXT
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);
CREATE TABLE IF NOT EXISTS ui_sessions (
    token_hash TEXT PRIMARY KEY,     -- sha256 of the session cookie; the cookie itself is never stored
    key_id INTEGER NOT NULL,         -- the API key the analyst logged in with
    key_name TEXT NOT NULL,
    csrf TEXT NOT NULL,              -- per-session CSRF token (rendered into every form)
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ui_sessions_key ON ui_sessions(key_id);
"""


class ServeDB:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        with self.lock:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)

    def execute(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self.lock:
            return self.conn.execute(sql, tuple(args))

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, tuple(args)).fetchall()

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def open_db(home: Path) -> ServeDB:
    return ServeDB(Path(home) / "serve.sqlite")
