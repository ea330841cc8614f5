"""Async jobs for long work: submit -> id -> status/progress -> result, persisted in SQLite.

A job is a registered ``JobKind`` (typed pydantic request, a function ``run(ctx, request,
progress) -> result``). State lives in ``serve.sqlite`` so jobs survive a restart: on start,
jobs that were ``running`` are marked ``interrupted`` (with the time and a message) and can be
retried in place (``retry``: same id, ``attempts`` + 1); ``queued`` ones are queued again.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel

from secfoundry.serve.db import ServeDB
from secfoundry.serve.workers import Context, WorkerPool

FINAL = ("done", "failed", "cancelled", "interrupted")


class JobCancelled(Exception):
    pass


@dataclass
class JobKind:
    name: str
    request: type[BaseModel]
    run: Callable[[Context, Any, "Progress"], Any]  # returns a pydantic model, dict or list
    summary: str = ""
    prepare: Callable[[Any], Any] | None = None  # vets/normalises a submitted request (may raise HTTPException)


class Progress:
    """Handed to a running job: ``progress(fraction, message)``; raises ``JobCancelled`` on cancel."""

    def __init__(self, manager: "JobManager", job_id: str):
        self.m, self.job_id, self._last = manager, job_id, 0.0

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.job_id in self.m._cancel:
            raise JobCancelled()
        now = time.monotonic()
        if now - self._last >= 0.25 or fraction >= 1.0:  # bounded write rate
            self._last = now
            self.m.db.execute("UPDATE jobs SET progress=?, message=? WHERE id=?",
                              (max(0.0, min(1.0, float(fraction))), message[:500], self.job_id))


def _row(r: Any) -> dict[str, Any]:
    d = {k: r[k] for k in r.keys() if k not in ("params", "result")}
    d["has_result"] = r["result"] is not None
    return d


class JobManager:
    def __init__(self, db: ServeDB, pool: WorkerPool, kinds: dict[str, JobKind] | None = None):
        self.db = db
        self.pool = pool
        self.kinds: dict[str, JobKind] = dict(kinds or {})
        self._cancel: set[str] = set()
        self._lock = threading.Lock()
        self.recovered: dict[str, int] = {}

    def register(self, kind: JobKind) -> None:
        self.kinds[kind.name] = kind

    # -- lifecycle -----------------------------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """After a (re)start: running -> interrupted; queued -> run again."""
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(now))
        cur = self.db.execute(
            "UPDATE jobs SET status='interrupted', finished=?, message=? WHERE status='running'",
            (now, f"interrupted by a server restart (detected {stamp}); POST /jobs/{{id}}/retry to run it again"))
        interrupted = cur.rowcount
        queued = [r["id"] for r in self.db.query("SELECT id FROM jobs WHERE status='queued' ORDER BY created")]
        for jid in queued:
            self._dispatch(jid)
        self.recovered = {"interrupted": interrupted, "requeued": len(queued)}
        return self.recovered

    def submit(self, kind: str, request: BaseModel, owner: str) -> dict[str, Any]:
        if kind not in self.kinds:
            raise KeyError(kind)
        jid = "job_" + secrets.token_hex(8)
        self.db.execute("INSERT INTO jobs(id, kind, owner, status, params, created) VALUES (?,?,?,?,?,?)",
                        (jid, kind, owner, "queued", request.model_dump_json(), time.time()))
        self._dispatch(jid)
        return self.get(jid)  # type: ignore[return-value]

    def retry(self, jid: str) -> dict[str, Any]:
        row = self._must(jid)
        if row["status"] not in ("interrupted", "failed", "cancelled"):
            raise ValueError(f"job {jid} is {row['status']}; only interrupted, failed or cancelled jobs are retried")
        self.db.execute("UPDATE jobs SET status='queued', progress=0, message='retry queued', error=NULL, "
                        "result=NULL, started=NULL, finished=NULL WHERE id=?", (jid,))
        self._cancel.discard(jid)
        self._dispatch(jid)
        return self.get(jid)  # type: ignore[return-value]

    def cancel(self, jid: str) -> dict[str, Any]:
        row = self._must(jid)
        if row["status"] == "queued":
            self.db.execute("UPDATE jobs SET status='cancelled', finished=? WHERE id=? AND status='queued'",
                            (time.time(), jid))
        elif row["status"] == "running":
            self._cancel.add(jid)  # the job stops at its next progress call
        return self.get(jid)  # type: ignore[return-value]

    # -- queries ----------------------------------------------------------------------------------------
    def _one(self, jid: str) -> Any:
        rows = self.db.query("SELECT * FROM jobs WHERE id=?", (jid,))
        return rows[0] if rows else None

    def _must(self, jid: str) -> Any:
        row = self._one(jid)
        if row is None:
            raise KeyError(jid)
        return row

    def get(self, jid: str) -> dict[str, Any] | None:
        r = self._one(jid)
        return _row(r) if r is not None else None

    def params(self, jid: str) -> dict[str, Any] | None:
        r = self._one(jid)
        return json.loads(r["params"]) if r is not None else None

    def result(self, jid: str) -> Any:
        r = self._one(jid)
        return json.loads(r["result"]) if r is not None and r["result"] is not None else None

    def list(self, owner: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if owner is None:
            rows = self.db.query("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,))
        else:
            rows = self.db.query("SELECT * FROM jobs WHERE owner=? ORDER BY created DESC LIMIT ?", (owner, limit))
        return [_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.query("SELECT status, count(*) FROM jobs GROUP BY status")}

    # -- execution --------------------------------------------------------------------------------------
    def _dispatch(self, jid: str) -> None:
        self.pool.submit(self._execute, jid)

    def _execute(self, ctx: Context, jid: str) -> None:
        row = self._one(jid)
        if row is None or row["status"] != "queued":
            return  # cancelled while queued, or already picked up
        kind = self.kinds.get(row["kind"])
        if kind is None:
            self.db.execute("UPDATE jobs SET status='failed', error=?, finished=? WHERE id=?",
                            (f"job kind {row['kind']!r} is not available in this server", time.time(), jid))
            return
        self.db.execute("UPDATE jobs SET status='running', started=?, attempts=attempts+1, message='started' "
                        "WHERE id=?", (time.time(), jid))
        try:
            request = kind.request.model_validate_json(row["params"])
            out = kind.run(ctx, request, Progress(self, jid))
            if isinstance(out, BaseModel):
                text = out.model_dump_json()
            else:
                text = json.dumps(out, ensure_ascii=False, default=str)
            self.db.execute("UPDATE jobs SET status='done', progress=1, result=?, finished=?, message='done' "
                            "WHERE id=?", (text, time.time(), jid))
        except JobCancelled:
            self.db.execute("UPDATE jobs SET status='cancelled', finished=?, message='cancelled while running' "
                            "WHERE id=?", (time.time(), jid))
        except Exception as e:  # noqa: BLE001 - a job's failure is recorded, the server goes on
            self.db.execute("UPDATE jobs SET status='failed', error=?, finished=? WHERE id=?",
                            (f"{type(e).__name__}: {e}"[:2000], time.time(), jid))
        finally:
            self._cancel.discard(jid)
