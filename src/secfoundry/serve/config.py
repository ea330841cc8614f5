"""``ServeConfig``: every knob of the service in one typed place (CLI flags map onto it)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path


def serve_home() -> Path:
    """``SECFOUNDRY_HOME/serve``: keys, jobs (SQLite), audit log, job uploads."""
    from secfoundry.core.paths import home

    p = home() / "serve"
    p.mkdir(parents=True, exist_ok=True)
    return p


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; anything else (0.0.0.0 included) is exposed."""
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname: it may resolve to anything, so treat it as exposed


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    model: str | None = None  # LLM spec for the apps ("smollm2-135m-instruct", "openai:...", ...); None = no LLM
    home: Path | None = None  # default: SECFOUNDRY_HOME/serve
    kb_path: Path | None = None  # default: SECFOUNDRY_KB or SECFOUNDRY_HOME/kb
    max_body_bytes: int = 16 * 1024 * 1024  # JSON bodies and uploads alike -> 413 above
    rate_per_minute: float = 600.0  # per API key, token bucket
    rate_burst: int = 120
    request_timeout_s: float = 60.0  # synchronous endpoints -> 504 above (use a job instead)
    job_workers: int = 1  # background job threads (2 cores: one leaves room for requests)
    cors_origins: list[str] = field(default_factory=list)  # empty: CORS off (no headers sent)
    secure_cookies: bool = False  # set the Secure flag on the UI cookie (behind TLS)
    audit_max_bytes: int = 20 * 1024 * 1024  # audit.jsonl rotates past this size
    audit_backups: int = 5  # rotated audit files kept (audit.jsonl.1 .. .N)

    def resolved_home(self) -> Path:
        if self.home is not None:
            self.home.mkdir(parents=True, exist_ok=True)
            return self.home
        return serve_home()

    @classmethod
    def from_env(cls, **overrides: object) -> "ServeConfig":
        """Defaults, then ``SECFOUNDRY_SERVE_*`` variables, then explicit overrides (CLI flags)."""
        cfg = cls()
        env = os.environ
        if env.get("SECFOUNDRY_SERVE_RATE"):
            cfg.rate_per_minute = float(env["SECFOUNDRY_SERVE_RATE"])
        if env.get("SECFOUNDRY_SERVE_MAX_BODY_MB"):
            cfg.max_body_bytes = int(float(env["SECFOUNDRY_SERVE_MAX_BODY_MB"]) * 1024 * 1024)
        if env.get("SECFOUNDRY_SERVE_CORS"):
            cfg.cors_origins = [o.strip() for o in env["SECFOUNDRY_SERVE_CORS"].split(",") if o.strip()]
        for k, v in overrides.items():
            if v is not None:
                setattr(cfg, k, v)
        return cfg
