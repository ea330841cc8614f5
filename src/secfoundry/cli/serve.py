"""``secfoundry serve``: the analyst service — HTTP API and web UI (issue #17)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="The analyst service: HTTP API and web UI.")
