"""Commands registered on ``secfoundry.corpus.cli.app``."""

from __future__ import annotations

from secfoundry.corpus.cli import app  # noqa: F401
