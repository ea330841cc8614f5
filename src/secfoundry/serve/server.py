"""Run the service: safety checks before binding, a session key when asked, uvicorn, clean stop.

Refuses a non-loopback host while no API key exists (nobody could use it safely, and "open to
the network without auth" is never a default). Ctrl-C: uvicorn stops accepting and finishes
in-flight requests; running jobs are asked to stop and, if still running after a grace period,
are marked ``interrupted`` (retryable after the next start); the session key is revoked.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from secfoundry.serve.config import ServeConfig, is_loopback


SWITCH_INTERVAL_S = 0.0005


class StartupRefused(Exception):
    pass


@dataclass
class Started:
    url: str
    key: str | None  # the session key, when one was created
    key_name: str | None


def check_bind(config: ServeConfig, active_keys: int) -> None:
    if not is_loopback(config.host) and active_keys == 0:
        raise StartupRefused(
            f"refusing to listen on {config.host}: it is not a loopback address and no API key exists. "
            "Create one first (`secfoundry serve keys add NAME`), or bind 127.0.0.1.")
    if config.model:
        from secfoundry.models.spec import ModelSpecError, parse_spec

        try:
            parse_spec(config.model)  # fail at start on a typo, not at the first request
        except ModelSpecError as e:
            raise StartupRefused(str(e)) from None
    if config.cors_origins and "*" in config.cors_origins:
        raise StartupRefused("CORS origin '*' is not allowed: name the origins that may call the API")


def run(config: ServeConfig, *, session_key: bool = False, warm: bool = False,
        on_ready: Callable[[Any, Started], None] | None = None, grace_s: float = 3.0) -> int:
    """Serve until interrupted. Returns the process exit code."""
    import uvicorn

    from secfoundry.serve.app import create_app
    from secfoundry.serve.state import Service

    if config.kb_path is not None:  # apps that open "the default KB" themselves get this one too
        os.environ["SECFOUNDRY_KB"] = str(config.kb_path)
    svc = Service(config)
    check_bind(config, svc.keys.active_count())
    key = name = None
    if session_key or svc.keys.active_count() == 0:
        name = f"session-{config.port}"
        svc.keys.revoke(name)  # a leftover from a run that was killed
        _, key = svc.keys.add(name)
    app = create_app(config, service=svc)
    from secfoundry.serve.workers import settle

    settle()  # the imported framework and app modules: out of every later full GC pass
    # The event loop shares the GIL with the worker threads. Each time it releases the GIL (a
    # socket write, a SQLite call) and a worker is running Python, it waits up to the switch
    # interval to get it back: 5 ms by default, a queue of such waits is the latency tail of
    # cheap requests under load. 0.5 ms bounds each wait; the cost is more frequent switches.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    if warm:
        svc.warm()  # in the background: readiness is not delayed, /readyz shows progress
    host = f"[{config.host}]" if ":" in config.host else config.host
    started = Started(f"http://{host}:{config.port}", key, name)
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.port, log_level="warning", access_log=False, server_header=False,
        proxy_headers=False, timeout_keep_alive=5, limit_concurrency=512, timeout_graceful_shutdown=5))

    if on_ready is not None:
        def _announce() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                on_ready(svc, started)
        threading.Thread(target=_announce, daemon=True, name="sf-announce").start()

    try:
        server.run()  # returns after SIGINT/SIGTERM (lifespan shutdown has closed nothing of the jobs yet)
    except KeyboardInterrupt:  # uvicorn re-raises the captured Ctrl-C after its graceful shutdown
        pass
    stuck = stop_jobs(svc, grace_s)
    if name:
        svc.keys.revoke(name)
    code = 0 if server.started else 1
    svc.close()
    busy = [t.name for t in threading.enumerate() if t.name.startswith("sf-") and t.is_alive()]
    if stuck or busy:
        # Worker threads still inside a job or a long synchronous call (a model fit, say): job rows
        # are marked interrupted above; the process leaves now instead of waiting for them at exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def stop_jobs(svc: Any, grace_s: float) -> list[str]:
    """Ask running jobs to stop; mark those still running after ``grace_s`` as interrupted."""
    running = [j["id"] for j in svc.jobs.list(limit=10_000) if j["status"] == "running"]
    for jid in running:
        svc.jobs._cancel.add(jid)
    deadline = time.monotonic() + grace_s
    while running and time.monotonic() < deadline:
        time.sleep(0.1)
        running = [jid for jid in running if (svc.jobs.get(jid) or {}).get("status") == "running"]
    for jid in running:
        svc.db.execute("UPDATE jobs SET status='interrupted', finished=?, message=? WHERE id=? AND status='running'",
                       (time.time(), "interrupted: the server was stopped; POST /jobs/{id}/retry to run it again",
                        jid))
    return running
