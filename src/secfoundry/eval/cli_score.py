"""Commands registered on ``secfoundry.eval.cli.app``."""

from __future__ import annotations

from secfoundry.eval.cli import app  # noqa: F401
