"""Tests that need ../shared/data skip on a developer machine but fail loudly under CI=true."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = '''
from tests import conftest
conftest.SHARED = conftest.SHARED / "definitely-not-here"

def test_needs_data(bench_dir):
    pass
'''


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess:
    """A probe test outside the repository, with the repository's conftest loaded as a plugin."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {"PATH": "/usr/bin:/bin", "CI": ci, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "SECFOUNDRY_TEST_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                           "--rootdir", str(tmp_path), str(probe)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_missing_shared_data_fails_under_ci(tmp_path):
    r = _run(tmp_path, "true")
    assert r.returncode != 0 and "CI=true: failing instead of skipping" in r.stdout, r.stdout[-2000:]


def test_missing_shared_data_skips_outside_ci(tmp_path):
    r = _run(tmp_path, "")
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout[-2000:]


def test_every_shared_data_test_uses_the_helper():
    """No test reads ../shared/data by its own path and skips on its own."""
    offenders = []
    for f in (ROOT / "tests").rglob("*.py"):
        if f.name in ("conftest.py", "test_shared_data.py") and f.parent == ROOT / "tests":
            continue
        text = f.read_text(encoding="utf-8")
        if '"shared" / "data"' in text and "pytest.skip(" in text and "pytest.fail(" not in text:
            offenders.append(str(f.relative_to(ROOT)))
    assert not offenders, offenders
