"""Finding and running the external engines (checkov, semgrep, bandit, gixy) offline.

checkov and semgrep pin versions of packaging/networkx/click/protobuf that would downgrade this
project's environment, so they live in their own virtual environments (``make review-engines``
or ``secfoundry review engines --install``) and run as subprocesses. bandit and gixy-ng have no
conflicts and are declared dependencies, still run as subprocesses of this interpreter (a crash
or hang in one file cannot take the review down).

Every engine runs with network access cut: proxies point at a closed local port, telemetry and
version checks are off, and no rule registry is consulted (only rules shipped in this package).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from secfoundry.apps.review.schemas import EngineRun

ISOLATED = ("checkov", "semgrep")  # engines kept in their own venv (dependency conflicts)
_CLOSED = "http://127.0.0.1:9"      # discard port: any network attempt fails at once


@dataclass
class Engine:
    name: str
    argv0: list[str]     # command prefix
    version: str = ""


def tools_dirs() -> list[Path]:
    """Where isolated engine venvs are looked for: SECFOUNDRY_TOOLS, the repo's .venv-tools,
    then SECFOUNDRY_HOME/tools."""
    out: list[Path] = []
    env = os.environ.get("SECFOUNDRY_TOOLS")
    if env:
        out.append(Path(env))
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists():
            out.append(parent / ".venv-tools")
            break
    try:
        from secfoundry.core.paths import home

        out.append(home() / "tools")
    except Exception:  # pragma: no cover - paths never fails in practice
        pass
    return out


def offline_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[k] = _CLOSED
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    env.update({
        "SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_USER_AGENT_APPEND": "secfoundry",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "BC_SKIP_MAPPING": "TRUE", "CKV_NO_GUIDE": "TRUE",
        "CHECKOV_ENABLE_ACCESS_LOG": "false", "PYTHONWARNINGS": "ignore", "NO_COLOR": "1",
        "LOG_LEVEL": "ERROR",
    })
    env.pop("BC_API_KEY", None)
    env.pop("PRISMA_API_URL", None)
    if extra:
        env.update(extra)
    return env


def _exe(name: str) -> list[str] | None:
    if name in ("bandit", "gixy"):
        mod = {"bandit": "bandit", "gixy": "gixy.cli.main"}[name]
        try:
            import importlib.util

            if importlib.util.find_spec(mod.split(".")[0]) is None:
                return None
        except Exception:
            return None
        return [sys.executable, "-m", mod]
    env = os.environ.get(f"SECFOUNDRY_{name.upper()}")
    if env:
        return [env]
    for d in tools_dirs():
        p = d / name / "bin" / name
        if p.exists():
            return [str(p)]
    w = shutil.which(name)
    return [w] if w else None


@functools.lru_cache(maxsize=None)
def find(name: str) -> Engine | None:
    argv = _exe(name)
    if argv is None:
        return None
    version = ""
    try:
        r = subprocess.run(argv + ["--version"], capture_output=True, text=True, timeout=120, env=offline_env())
        import re

        m = re.search(r"\d+\.\d+(\.\d+)?", r.stdout or r.stderr or "")
        version = m.group(0) if m else ""
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Engine(name=name, argv0=argv, version=version)


def begin(name: str, files: list, missing: str) -> tuple[EngineRun, Engine | None]:
    """Common start of every engine runner: an :class:`EngineRun` for ``files``, marked skipped
    when there is nothing to scan or unavailable (with ``missing`` as the note) when the engine is
    not installed; the engine is returned only when it should run."""
    run = EngineRun(engine=name, files=len(files))
    if not files:
        run.status = "skipped"
        return run, None
    e = find(name)
    if e is None:
        run.status, run.note = "unavailable", missing
        return run, None
    run.version = e.version
    return run, e


def run(engine: Engine, args: list[str], *, timeout: float = 1800, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(engine.argv0 + args, capture_output=True, text=True, timeout=timeout,
                          env=offline_env(), cwd=cwd)


def parse_json_output(text: str) -> object:
    """Engines sometimes print log lines before the JSON document: take the first '{' or '['."""
    text = text.strip()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return json.loads(text[i:])
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON document in engine output")


def install(names: list[str], dest: Path | None = None) -> list[str]:
    """Create one venv per isolated engine under ``dest`` (default: first tools dir) and
    install it from the package index. Network is needed here only, never when reviewing."""
    dest = dest or tools_dirs()[0]
    done = []
    for name in names:
        venv = dest / name
        if not (venv / "bin" / name).exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", name], check=True)
        done.append(str(venv / "bin" / name))
    find.cache_clear()
    return done
