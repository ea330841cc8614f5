"""``secfoundry soc``: SOC acceleration — ingest, detect, triage, cases, timelines, notes (issue #10)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="SOC: ingest logs, detect with Sigma, triage, build cases, timelines and notes.")
