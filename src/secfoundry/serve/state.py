"""``Service``: the process-wide objects the routes share (config, keys, jobs, audit, workers)."""

from __future__ import annotations

import time
from pathlib import Path

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
        self.audit = AuditLog(self.home / "audit.jsonl")
        self.limiter = RateLimiter(config.rate_per_minute, config.rate_burst)
        self.sessions = Sessions()
        self.loaded = Loaded()
        self.shared = Shared(config.kb_path, config.model, self.loaded)
        self.requests = WorkerPool("req", REQUEST_THREADS, self.shared)
        self.job_pool = WorkerPool("job", config.job_workers, self.shared)
        self.jobs = JobManager(self.db, self.job_pool)
        self.apps: dict[str, str] = {}  # app endpoint group -> "available" | reason it is not

    def kb_db_path(self) -> Path:
        from secfoundry.kb import default_path
        from secfoundry.kb.sync import KBPaths

        return KBPaths.at(self.config.kb_path or default_path()).db

    def close(self) -> None:
        self.requests.shutdown(wait=False)
        self.job_pool.shutdown(wait=False)
        self.audit.close()
        self.db.close()
