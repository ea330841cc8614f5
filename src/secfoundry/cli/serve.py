"""``secfoundry serve``: the analyst service — HTTP API and web UI (issue #17).

    secfoundry serve [--host 127.0.0.1] [--port 8000] [--model SPEC]
    secfoundry serve keys add NAME | list | revoke NAME-or-PREFIX
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                  help="The analyst service: HTTP API and web UI.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys: stored hashed, shown once.")
app.add_typer(keys_app, name="keys")


def _store() -> Any:
    from secfoundry.serve.config import serve_home
    from secfoundry.serve.db import open_db
    from secfoundry.serve.keys import KeyStore

    return KeyStore(open_db(serve_home()))


@app.callback()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address. A non-loopback one needs an API key first."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    model: str = typer.Option("smollm2-135m-instruct", "--model", help="LLM the apps may use when a request asks "
                              "for it (llm: 'server'): the embedded default, or e.g. openai:http://host:8000/v1#MODEL "
                              "(vLLM); 'none' for retrieval + learned models only. Loaded on first use."),
    kb: Optional[Path] = typer.Option(None, "--kb", help="Knowledge-base dir (default SECFOUNDRY_HOME/kb)."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Requests per minute per key (default 600)."),
    burst: Optional[int] = typer.Option(None, "--burst", help="Burst size per key (default 120)."),
    max_body_mb: Optional[float] = typer.Option(None, "--max-body-mb", help="Request body limit (default 16)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds before a synchronous call answers 504 "
                                            "(default 60; long work belongs in a job)."),
    cors: list[str] = typer.Option([], "--cors-origin", help="Allow this browser origin (CORS is off by default)."),
    session_key: bool = typer.Option(False, "--session-key", help="Create a key for this run, print it, revoke it "
                                     "on exit (done anyway when no key exists)."),
    warm: bool = typer.Option(False, "--warm", help="Load the search index and app models in the background "
                              "right after start (first requests are then fast)."),
    preload: Optional[Path] = typer.Option(None, "--preload-samples", help="Shared data dir (../shared/data): queue "
                                           "sample jobs for each available app at start."),
    audit_max_mb: Optional[float] = typer.Option(None, "--audit-max-mb", help="Rotate audit.jsonl past this size "
                                                 "(default 20; 5 rotated files are kept)."),
) -> None:
    """Start the service (API at /, docs at /docs, web UI at /ui/). Ctrl-C stops it."""
    if ctx.invoked_subcommand is not None:
        return
    from secfoundry.serve.config import ServeConfig
    from secfoundry.serve.server import StartupRefused, run

    overrides: dict[str, Any] = {"host": host, "port": port, "model": None if model.lower() == "none" else model,
                                 "kb_path": kb, "rate_per_minute": rate,
                                 "rate_burst": burst, "request_timeout_s": timeout,
                                 "cors_origins": list(cors) or None}
    if max_body_mb is not None:
        overrides["max_body_bytes"] = int(max_body_mb * 1024 * 1024)
    if audit_max_mb is not None:
        overrides["audit_max_bytes"] = int(audit_max_mb * 1024 * 1024)
    config = ServeConfig.from_env(**overrides)

    def ready(svc: Any, started: Any) -> None:
        lines = [f"secfoundry service ready: {started.url}/ui/  (API docs {started.url}/docs)"]
        if preload is not None:
            from secfoundry.serve.samples import preload_samples

            owner = started.key_name or "samples"
            for note in preload_samples(svc, preload, owner=owner):
                lines.append(f"  sample: {note}")
        if started.key:
            lines.append(f"API key for this run (key '{started.key_name}', revoked when the server stops):")
            lines.append(started.key)
        typer.echo("\n".join(lines), err=False)

    try:
        code = run(config, session_key=session_key, warm=warm, on_ready=ready)
    except StartupRefused as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@keys_app.command("add")
def keys_add(name: str = typer.Argument(..., help="Who or what uses the key (e.g. soar, alice).")) -> None:
    """Create a key. It is printed once, alone on the last line; only its hash is stored."""
    try:
        info, key = _store().add(name)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"created key '{info.name}' ({info.prefix}...). Store it now: it is not shown again.")
    typer.echo(key)


@keys_app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json"), all_: bool = typer.Option(True, "--all/--active",
              help="Include revoked keys.")) -> None:
    """Keys by name and prefix (never the key)."""
    import time

    keys = _store().list(include_revoked=all_)
    if as_json:
        typer.echo(json.dumps([k.to_dict() for k in keys], indent=2))
        return
    fmt = "%Y-%m-%d %H:%M"
    for k in keys:
        state = "active" if k.active else "revoked " + time.strftime(fmt, time.localtime(k.revoked or 0))
        used = time.strftime(fmt, time.localtime(k.last_used)) if k.last_used else "never"
        typer.echo(f"{k.prefix}...  {k.name:24s} {state:24s} created {time.strftime(fmt, time.localtime(k.created))}"
                   f"  last used {used}")
    if not keys:
        typer.echo("no keys: secfoundry serve keys add NAME")


@keys_app.command("revoke")
def keys_revoke(name_or_prefix: str = typer.Argument(..., help="Key name (all its keys) or prefix sf_xxxxx.")) -> None:
    """Revoke keys at once (requests with them get 403; UI sessions end)."""
    done = _store().revoke(name_or_prefix)
    if not done:
        typer.echo(f"no active key named or prefixed {name_or_prefix!r}", err=True)
        raise typer.Exit(1)
    for k in done:
        typer.echo(f"revoked {k.prefix}... ({k.name})")
