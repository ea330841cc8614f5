"""`secfoundry corpus` commands. Commands live in small modules that register on ``app``."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)

# Imported for their side effect of registering commands on `app`.
from secfoundry.corpus import cli_pipeline, cli_process, cli_report  # noqa: E402,F401
