"""Code engines: bandit (Python) and semgrep with the rules shipped in ``data/semgrep/``.

Inline suppressions are comments inside untrusted code, so they are ignored: bandit runs with
``--ignore-nosec`` and semgrep with ``--disable-nosem``. semgrep runs with ``--metrics=off``,
no version check, no registry (``--config`` points only at the shipped rule files).
"""

from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path

from secfoundry.apps.review import engines as eng
from secfoundry.apps.review.files import Target
from secfoundry.apps.review.schemas import EngineRun, Finding, Location, Severity, Skipped

SEMGREP_LANGS = {"python", "javascript", "typescript", "java", "go", "c", "cpp"}


def semgrep_rules_dir() -> Path:
    return Path(str(resources.files("secfoundry.apps.review").joinpath("data/semgrep")))


def _lines(path: Path, start: int, end: int) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            out = []
            for i, line in enumerate(fh, 1):
                if i > end:
                    break
                if i >= start:
                    out.append(line.rstrip("\n"))
            return "\n".join(out)[:600]
    except OSError:
        return ""


def run_bandit(targets: list[Target], *, jobs: int = 2, timeout: float = 3600) -> tuple[list[Finding], EngineRun, list[Skipped]]:
    py = [t for t in targets if t.kind == "python"]
    run, e = eng.begin("bandit", py, "bandit not installed")
    if e is None:
        return [], run, []
    by_path = {str(t.path): t for t in py}
    t0 = time.time()
    out: list[Finding] = []
    skipped: list[Skipped] = []
    chunk = 2000
    for i in range(0, len(py), chunk):
        part = py[i:i + chunk]
        try:
            r = eng.run(e, ["-f", "json", "-q", "--ignore-nosec", *[str(t.path) for t in part]], timeout=timeout)
            data = eng.parse_json_output(r.stdout)
        except Exception as ex:
            run.status, run.note = "failed", str(ex)[:300]
            continue
        for err in data.get("errors", []) if isinstance(data, dict) else []:
            t = by_path.get(err.get("filename", ""))
            skipped.append(Skipped(path=t.rel if t else err.get("filename", ""),
                                   reason=f"bandit could not parse: {str(err.get('reason', ''))[:160]}"))
        for res in data.get("results", []) if isinstance(data, dict) else []:
            t = by_path.get(res.get("filename", ""))
            rel = t.rel if t else res.get("filename", "")
            rng = res.get("line_range") or [res.get("line_number", 1)]
            cwe = res.get("issue_cwe") or {}
            out.append(Finding(
                rule_id=res.get("test_id", ""), engine="bandit", title=res.get("test_name", ""),
                message=res.get("issue_text", ""), severity=Severity.parse(res.get("issue_severity")),
                confidence=str(res.get("issue_confidence", "medium")).lower() if str(res.get("issue_confidence", "")).lower()
                in ("low", "medium", "high") else "medium",
                location=Location(file=rel, start_line=max(1, int(res.get("line_number") or 1)),
                                  end_line=max(1, int(max(rng))) if rng else None,
                                  snippet=_lines(Path(res.get("filename", "")), min(rng), max(rng)) if rng else ""),
                cwe=[f"CWE-{cwe['id']}"] if cwe.get("id") else [], fix=res.get("more_info", "")))
    run.seconds, run.findings = time.time() - t0, len(out)
    return out, run, skipped


def run_semgrep(targets: list[Target], *, jobs: int = 2, timeout: float = 3600,
                rules: Path | None = None) -> tuple[list[Finding], EngineRun, list[Skipped]]:
    files = [t for t in targets if t.kind in SEMGREP_LANGS]
    run, e = eng.begin("semgrep", files, "semgrep not installed (make review-engines)")
    if e is None:
        return [], run, []
    rules = rules or semgrep_rules_dir()
    # The engine runs in the folder holding every target, with paths relative to it. semgrep-core is
    # called directly (semgrep_core.py: ~8x less CPU than the `semgrep scan` front end); the front end
    # is the fallback. `semgrep scan` treats each listed file as a scanning root and, for one outside
    # its working folder, spawns a `semgrep-core -rpc` process per file (~0.2 CPU-s each).
    root = Path(os.path.commonpath([str(t.path) for t in files]))
    if not root.is_dir():
        root = root.parent
    by_path = {os.path.relpath(t.path, root): t for t in files}
    t0 = time.time()
    out: list[Finding] = []
    skipped: list[Skipped] = []
    import subprocess

    from secfoundry.apps.review import semgrep_core

    data: object = None
    if os.environ.get("SECFOUNDRY_SEMGREP_CLI", "") != "1":
        try:
            data = semgrep_core.run_core(e, rules, {k: t.kind for k, t in by_path.items()}, root, jobs=jobs,
                                         timeout=timeout)
            run.note = "semgrep-core direct"
        except subprocess.TimeoutExpired as ex:
            run.status, run.note, run.seconds = "failed", f"timed out after {ex.timeout:.0f} s", time.time() - t0
            return [], run, []
        except semgrep_core.CoreUnavailable as ex:
            run.note = f"semgrep-core not used ({str(ex)[:160]}): semgrep scan"
    if data is None:
        data = _semgrep_cli(e, rules, list(by_path), root, jobs=jobs, timeout=timeout)
        if isinstance(data, str):
            run.status, run.note, run.seconds = "failed", (run.note + "; " + data).strip("; "), time.time() - t0
            return [], run, []

    def target(p: str) -> Target | None:
        return by_path.get(p) or by_path.get(os.path.relpath(root / p, root))

    for err in data.get("errors", []) if isinstance(data, dict) else []:
        p = err.get("path") or ""
        t = target(p)
        if t is not None and err.get("level", "error") != "warn":
            skipped.append(Skipped(path=t.rel, reason=f"semgrep: {str(err.get('type', ''))[:60]} "
                                                      f"{str(err.get('message', ''))[:140]}"))
        elif t is None and "Rule" in str(err.get("type", "")):
            run.note = (run.note + f"; rule error: {str(err.get('message', ''))[:200]}").strip("; ")
    for res in data.get("results", []) if isinstance(data, dict) else []:
        p = res.get("path", "")
        t = target(p)
        rel = t.rel if t else p
        extra = res.get("extra") or {}
        meta = extra.get("metadata") or {}
        start, end = int(res["start"]["line"]), int(res["end"]["line"])
        conf = str(meta.get("confidence", "medium")).lower()
        out.append(Finding(
            rule_id=str(res.get("check_id", "")).rsplit(".", 1)[-1], engine="semgrep",
            title=str(meta.get("title", "")), message=str(extra.get("message", "")),
            severity=Severity.parse(extra.get("severity")), confidence=conf if conf in ("low", "medium", "high") else "medium",
            location=Location(file=rel, start_line=max(1, start), end_line=max(1, end),
                              snippet=_lines(t.path if t else root / p, start, min(end, start + 5))),
            cwe=[str(c).split(":")[0] for c in (meta.get("cwe") or [])]))
    run.seconds, run.findings = time.time() - t0, len(out)
    return out, run, skipped


def _semgrep_cli(e: eng.Engine, rules: Path, rel_paths: list[str], root: Path, *, jobs: int,
                 timeout: float) -> object:
    """``semgrep scan --json`` from ``root`` on ``rel_paths``: the parsed output, or an error string."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(rel_paths))
        listing = fh.name
    args = ["scan", "--config", str(rules), "--json", "--quiet", "--metrics=off", "--disable-version-check",
            "--disable-nosem", "--no-git-ignore", "-j", str(max(1, jobs)), "--timeout", "20",
            "--max-target-bytes", "2000000", "--target-list", listing]
    try:
        r = eng.run(e, args, timeout=timeout, cwd=str(root))
        return eng.parse_json_output(r.stdout)
    except subprocess.TimeoutExpired as ex:
        return f"timed out after {ex.timeout:.0f} s"
    except Exception:
        # semgrep versions without --target-list (osemgrep front end): the files on the command line
        try:
            args = [a for a in args if a not in ("--target-list", listing)] + ["--", *rel_paths]
            r = eng.run(e, args, timeout=timeout, cwd=str(root))
            return eng.parse_json_output(r.stdout)
        except subprocess.TimeoutExpired as ex:
            return f"timed out after {ex.timeout:.0f} s"
        except Exception as ex:
            return str(ex)[:300]
    finally:
        Path(listing).unlink(missing_ok=True)
