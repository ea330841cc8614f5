"""``secfoundry review``: configuration review, secure-code review, compliance mapping (issue #11)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Engineering review: configs, code, compliance mapping.")
