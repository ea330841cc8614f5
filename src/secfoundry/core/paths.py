"""Where secfoundry keeps its state, and where it finds offline data.

Everything the tool downloads or builds (benchmark files, converted models, run caches, the
knowledge base) lives under ``SECFOUNDRY_HOME`` (default ``~/.cache/secfoundry``).
"""

from __future__ import annotations

import os
from pathlib import Path

# Repository root when running from a checkout (src/secfoundry/core/paths.py -> repo root).
_REPO_ROOT = Path(__file__).resolve().parents[3]


def home() -> Path:
    """The state directory; created on first use."""
    p = Path(os.environ.get("SECFOUNDRY_HOME", Path.home() / ".cache" / "secfoundry")).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_dir(*parts: str) -> Path:
    """A sub-directory of the state directory, created on first use."""
    p = home().joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def shared_data() -> Path | None:
    """``../shared/data`` beside the checkout, when it exists (offline development and tests)."""
    p = _REPO_ROOT.parent / "shared" / "data"
    return p if p.is_dir() else None


def benchmark_data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Local benchmark copy: ``--data-dir`` > ``SECFOUNDRY_DATA`` > ``../shared/data/benchmarks``.

    Returns None when no local copy exists; loaders then download into the cache.
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get("SECFOUNDRY_DATA")
    if env:
        return Path(env)
    sd = shared_data()
    if sd and (sd / "benchmarks").is_dir():
        return sd / "benchmarks"
    return None


def mirror_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Source mirror: ``--mirror`` > ``SECFOUNDRY_MIRROR`` > None (live download).

    ``../shared/data/mirror`` is *not* picked up implicitly for sources: tests and the
    Makefile pass it explicitly, so a user's machine never silently reads stale data.
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get("SECFOUNDRY_MIRROR")
    return Path(env) if env else None
