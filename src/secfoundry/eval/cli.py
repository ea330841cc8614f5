"""`secfoundry eval` commands. Commands live in small modules that register on ``app``."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)

# Imported for their side effect of registering commands on `app`.
from secfoundry.eval import cli_run, cli_score  # noqa: E402,F401
