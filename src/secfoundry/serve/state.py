"""``Service``: the process-wide objects the routes share (config, keys, jobs, audit, workers)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from secfoundry.serve.audit import AuditLog
from secfoundry.serve.config import ServeConfig
from secfoundry.serve.db import ServeDB, open_db
from secfoundry.serve.jobs import JobManager
from secfoundry.serve.keys import KeyStore
from secfoundry.serve.ratelimit import RateLimiter
from secfoundry.serve.sessions import Sessions
from secfoundry.serve.workers import Loaded, Shared, WorkerPool

REQUEST_THREADS = 2  # blocking request work (KB lookups, app calls): one per core


class Service:
    def __init__(self, config: ServeConfig):
        self.config = config
        self.started = time.time()
        self.home: Path = config.resolved_home()
        self.db: ServeDB = open_db(self.home)
        self.keys = KeyStore(self.db)
        self.audit = AuditLog(self.home / "audit.jsonl", max_bytes=config.audit_max_bytes,
                              backups=config.audit_backups)
        self.limiter = RateLimiter(config.rate_per_minute, config.rate_burst)
        self.sessions = Sessions(self.db)
        self.loaded = Loaded()
        self.shared = Shared(config.kb_path, config.model, self.loaded)
        self.requests = WorkerPool("req", REQUEST_THREADS, self.shared)
        self.job_pool = WorkerPool("job", config.job_workers, self.shared)
        self.jobs = JobManager(self.db, self.job_pool)
        self.apps: dict[str, str] = {}  # app endpoint group -> "available" | reason it is not
        self.batchers: dict[str, Any] = {}  # operation kind -> batching.Batcher of its synchronous route
        self._kb_db: Path | None = None
        self._kb_seen = False
        # (label, fn(ctx)) run in the background by `warm()` (serve --warm): models that take long to load
        self.warmers: list[tuple[str, Callable[[Any], Any]]] = [("kb search index", lambda ctx: ctx.kb_warm_searcher())]
        self.warming: dict[str, str] = {}  # label -> pending | done (seconds) | failed: why

    def warm(self) -> None:
        """Load the slow parts now, one after another on a request worker, without blocking start."""
        def run_all(ctx: Any) -> None:
            for label, fn in self.warmers:
                t0 = time.perf_counter()
                try:
                    fn(ctx)
                    self.warming[label] = f"done ({time.perf_counter() - t0:.1f} s)"
                except Exception as e:  # noqa: BLE001 - reported by /readyz; requests load it again
                    self.warming[label] = f"failed: {type(e).__name__}: {e}"

        for label, _ in self.warmers:
            self.warming[label] = "pending"
        self.requests.submit(run_all)

    def kb_db_path(self) -> Path:
        if self._kb_db is None:  # resolved once: it is asked on every KB request
            from secfoundry.kb import default_path
            from secfoundry.kb.sync import KBPaths

            self._kb_db = KBPaths.at(self.config.kb_path or default_path()).db
        return self._kb_db

    def kb_exists(self) -> bool:
        """Whether the KB file exists; a yes is remembered (a stat per request would release the GIL
        on the event loop), a no is checked again each time (a first sync may be running)."""
        if not self._kb_seen:
            self._kb_seen = self.kb_db_path().exists()
        return self._kb_seen

    def close(self) -> None:
        self.requests.shutdown(wait=False)
        self.job_pool.shutdown(wait=False)
        self.audit.close()
        cache = self.shared.objects.get("kb.show_cache")
        if cache is not None:
            cache.close()
        self.db.close()
