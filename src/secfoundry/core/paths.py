"""Where secfoundry keeps its state, and where it finds offline data.

Everything the tool downloads or builds (benchmark files, converted models, run caches, the
knowledge base) lives under ``SECFOUNDRY_HOME`` (default ``~/.cache/secfoundry``).

Offline data — the source mirror (``--mirror``) and the benchmark copy (``--data-dir``) — is
found by one rule, the same for both:

1. the command-line option (or the ``explicit`` argument), when given;
2. else the environment variable (``SECFOUNDRY_MIRROR``, ``SECFOUNDRY_DATA``);
   then the value a config file gives (a corpus recipe's ``mirror:``), passed as ``default``;
3. else ``../shared/data/<mirror|benchmarks>`` beside a source checkout, when that folder
   exists (development and tests; an installed package has no such folder); commands for which
   the data is an optional extra input (``corpus audit-filters --mirror``) skip this step;
4. else none: connectors and benchmark loaders download into ``SECFOUNDRY_HOME``.

(Before, ``--mirror`` skipped step 3 while ``--data-dir`` used it.)
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


def offline_dir(explicit: str | os.PathLike | None, env: str, shared_sub: str,
                default: str | os.PathLike | None = None, *, implicit: bool = True) -> Path | None:
    """The one resolution rule (module docstring): option > environment > config default >
    checkout's shared data > None. ``implicit=False`` stops before the checkout's shared data,
    for commands where the data is an optional extra input (``corpus audit-filters``)."""
    for value in (explicit, os.environ.get(env), default):
        if value:
            return Path(value)
    if not implicit:
        return None
    sd = shared_data()
    if sd and (sd / shared_sub).is_dir():
        return sd / shared_sub
    return None


def benchmark_data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Local benchmark copy: ``--data-dir`` > ``SECFOUNDRY_DATA`` > ``../shared/data/benchmarks`` > None."""
    return offline_dir(explicit, "SECFOUNDRY_DATA", "benchmarks")


def mirror_dir(explicit: str | os.PathLike | None = None, default: str | os.PathLike | None = None, *,
               implicit: bool = True) -> Path | None:
    """Source mirror: ``--mirror`` > ``SECFOUNDRY_MIRROR`` > ``default`` (a recipe's ``mirror:``) >
    ``../shared/data/mirror`` (unless ``implicit=False``) > None (live download)."""
    return offline_dir(explicit, "SECFOUNDRY_MIRROR", "mirror", default, implicit=implicit)


def publish_dir(tmp: Path, final: Path) -> None:
    """Make a fully written ``tmp`` directory visible as ``final`` in one rename; if another
    process published ``final`` first, keep theirs and drop ours (same inputs, same content)."""
    if final.exists():
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        return
    tmp.rename(final)
