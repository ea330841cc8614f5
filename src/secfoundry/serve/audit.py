"""The audit log: one JSON line per request (who, what, when, status, result size, duration).

Never written: the Authorization header, cookies, request bodies or query strings (a query
string can carry a key by mistake; the path and method say what was done). ``who`` is the
key's name and prefix, never the key.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any


class AuditLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8", buffering=1)  # line-buffered: each line lands whole

    def write(self, *, who: str, method: str, path: str, status: int, bytes_out: int, ms: float,
              client: str = "", job: str | None = None, note: str = "") -> None:
        rec: dict[str, Any] = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "who": who,
                               "method": method, "path": path, "status": status, "bytes": bytes_out,
                               "ms": round(ms, 2), "client": client}
        if job:
            rec["job"] = job
        if note:
            rec["note"] = note
        line = json.dumps(rec, ensure_ascii=False)
        with self._lock:
            if not self._fh.closed:
                self._fh.write(line + "\n")

    def tail(self, n: int = 50) -> list[dict[str, Any]]:
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
        with self._lock:
            self._fh.close()
