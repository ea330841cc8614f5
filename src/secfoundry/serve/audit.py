"""The audit log: one JSON line per request (who, what, when, status, result size, duration).

Never written: the Authorization header, cookies, request bodies or query strings (a query
string can carry a key by mistake; the path and method say what was done). ``who`` is the
key's name and prefix, never the key.

Off the request path: ``write`` only formats the line and appends it to an in-memory batch; a
writer thread appends the batch to ``audit.jsonl`` every ``flush_s`` seconds (one write per
batch, so a slow disk never stalls the event loop). The batch is bounded: past ``max_pending``
lines the request that adds one writes the batch itself (back-pressure; a line is never
dropped). ``close`` (server stop) writes what is pending; a hard kill loses at most the last
``flush_s`` seconds.

Rotation is by size, with the names ``logging.handlers.RotatingFileHandler`` uses: when
``audit.jsonl`` passes ``max_bytes`` it becomes ``audit.jsonl.1`` (``.1`` -> ``.2`` ... up to
``backups``; the oldest is deleted). Hand-written rather than that handler because it writes
and flushes per record on the calling thread; lines are never split across files.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

MAX_BYTES = 20 * 1024 * 1024
BACKUPS = 5


class AuditLog:
    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS, flush_s: float = 0.2,
                 max_pending: int = 20_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.backups, self.flush_s, self.max_pending = max_bytes, max(backups, 0), flush_s, max_pending
        self._pending: list[str] = []
        self._lock = threading.Lock()  # guards _pending
        self._io = threading.Lock()  # guards the file (writer thread, back-pressure writes, close)
        self._fh = open(self.path, "ab")
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sf-audit", daemon=True)
        self._thread.start()

    def write(self, *, who: str, method: str, path: str, status: int, bytes_out: int, ms: float,
              client: str = "", job: str | None = None, note: str = "") -> None:
        rec: dict[str, Any] = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "who": who,
                               "method": method, "path": path, "status": status, "bytes": bytes_out,
                               "ms": round(ms, 2), "client": client}
        if job:
            rec["job"] = job
        if note:
            rec["note"] = note
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._lock:
            self._pending.append(line)
            full = len(self._pending) >= self.max_pending
        if full:
            self.flush()

    def flush(self) -> None:
        """Append the pending lines to the file now (rotating first when it is full)."""
        with self._io:
            with self._lock:
                lines, self._pending = self._pending, []
            if not lines or self._closed:
                return
            size = self._fh.tell()
            chunk: list[bytes] = []
            for line in lines:
                b = line.encode("utf-8")
                if self.max_bytes > 0 and size > 0 and size + len(b) > self.max_bytes:
                    self._fh.write(b"".join(chunk))  # fill this file up to the limit, then start the next
                    chunk, size = [], 0
                    self._rotate()
                chunk.append(b)
                size += len(b)
            self._fh.write(b"".join(chunk))
            self._fh.flush()

    def _rotate(self) -> None:
        self._fh.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(self.backups - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{i}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fh = open(self.path, "ab")

    def files(self) -> list[Path]:
        """The current file and its rotated predecessors, newest first."""
        out = [self.path] if self.path.exists() else []
        return out + [p for i in range(1, self.backups + 1) if (p := self.path.with_name(f"{self.path.name}.{i}")).exists()]

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            try:
                self.flush()
            except (OSError, ValueError):  # a full disk or a file closed under us: the next flush retries
                time.sleep(self.flush_s)

    def tail(self, n: int = 50) -> list[dict[str, Any]]:
        self.flush()
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
        out = []
        for ln in lines:
            try:
                out.append(json.loads(ln))
            except ValueError:
                continue
        return out

    def close(self) -> None:
        self.flush()
        with self._io:
            self._closed = True
            self._fh.close()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(2)
