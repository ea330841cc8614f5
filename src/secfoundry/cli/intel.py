"""``secfoundry intel``: threat-intelligence and vulnerability applications (issue #12)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Threat intel and vulnerabilities: map-cwe, predict-cvss, extract-ttps, prioritize, emulate.")
