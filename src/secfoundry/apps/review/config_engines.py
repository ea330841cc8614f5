"""Configuration engines: checkov (Dockerfile, Kubernetes, Terraform), gixy-ng (nginx), the
ComplianceAsCode-derived host checks (sshd, sysctl, sudoers, Apache) and docker-compose checks.

Each returns raw findings (rule id, engine, location, engine CWE if any); the layer in
``layer.py`` adds CWE/control mapping, explanation and fix from the KB.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from secfoundry.apps.review import engines as eng
from secfoundry.apps.review import hostconf
from secfoundry.apps.review.files import Target, read_text
from secfoundry.apps.review.kbmap import KBMap, tables
from secfoundry.apps.review.schemas import EngineRun, Finding, Location, Severity, Skipped

CHECKOV_FRAMEWORK = {"dockerfile": "dockerfile", "kubernetes": "kubernetes", "terraform": "terraform"}


def _loc(rel: str, line: int, end: int | None = None, snippet: str = "") -> Location:
    return Location(file=rel, start_line=max(1, int(line or 1)), end_line=max(1, int(end)) if end else None,
                    snippet=snippet[:400])


def prevalidate(targets: list[Target]) -> tuple[list[Target], list[Skipped]]:
    """Malformed YAML/JSON/HCL is reported and left out (an engine would drop it silently)."""
    ok, bad = [], []
    for t in targets:
        try:
            text = read_text(t.path)
            if t.kind in ("kubernetes", "compose") and t.path.suffix.lower() in (".yaml", ".yml"):
                list(yaml.safe_load_all(text))
            elif t.kind == "kubernetes" and t.path.suffix.lower() == ".json":
                import json

                json.loads(text)
            elif t.kind == "terraform" and t.path.suffix.lower() == ".tf":
                _check_hcl(text)
        except (yaml.YAMLError, ValueError) as e:
            msg = str(e).splitlines()[0][:200]
            bad.append(Skipped(path=t.rel, reason=f"malformed {t.kind} ({'YAML' if t.kind != 'terraform' else 'HCL'}): {msg}"))
            continue
        ok.append(t)
    return ok, bad


def _check_hcl(text: str) -> None:
    """Cheap HCL sanity check (balanced braces/brackets outside strings and comments); checkov's
    own parser runs in its venv and would skip a broken file without naming it."""
    depth = 0
    s = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)
    s = re.sub(r"(#|//)[^\n]*|/\*.*?\*/", "", s, flags=re.S)
    s = re.sub(r"<<-?\s*(\w+)\n.*?\n\s*\1\b", "", s, flags=re.S)
    for i, ch in enumerate(s):
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced '{ch}' at line {s[:i].count(chr(10)) + 1}")
    if depth != 0:
        raise ValueError("unbalanced braces at end of file")


def run_checkov(targets: list[Target], *, timeout: float = 1800) -> tuple[list[Finding], EngineRun, list[Skipped]]:
    run, e = eng.begin("checkov", targets, "checkov not installed (make review-engines)")
    if e is None:
        return [], run, []
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="sf-checkov-")
    by_abs: dict[str, Target] = {}
    args = ["-o", "json", "--quiet", "--compact", "--skip-download", "--framework",
            *sorted({CHECKOV_FRAMEWORK[t.kind] for t in targets})]
    for i, t in enumerate(targets):
        path = _neutralize_suppressions(t, Path(tmp.name) / str(i))
        by_abs[str(path)] = t
        args += ["-f", str(path)]
    t0 = time.time()
    try:
        r = eng.run(e, args, timeout=timeout)
        data = eng.parse_json_output(r.stdout) if r.stdout.strip() else []
    except Exception as ex:  # engine crash / timeout: say so, keep the other engines' findings
        run.status, run.note, run.seconds = "failed", str(ex)[:300], time.time() - t0
        tmp.cleanup()
        return [], run, []
    finally:
        pass
    tmp.cleanup()
    run.seconds = time.time() - t0
    reports = data if isinstance(data, list) else [data]
    out: list[Finding] = []
    for rep in reports:
        if not isinstance(rep, dict):
            continue
        for fc in (rep.get("results") or {}).get("failed_checks", []):
            absp = fc.get("file_abs_path") or ""
            t = by_abs.get(absp) or next((x for p, x in by_abs.items() if p.endswith(fc.get("file_path", "\0"))), None)
            rel = t.rel if t else fc.get("file_path", "").lstrip("/")
            lr = fc.get("file_line_range") or [1, 1]
            block = fc.get("code_block") or []
            snippet = "".join(str(x[1]) for x in block[:6]) if block else ""
            out.append(Finding(
                rule_id=fc["check_id"], engine="checkov", title=fc.get("check_name", ""),
                message=f"{fc.get('check_name', '')} (resource {_resource(fc.get('resource', ''), rel)})",
                severity=Severity.parse(fc.get("severity"), Severity.medium),
                location=_loc(rel, lr[0] or 1, lr[1] or None, snippet),
                fix=fc.get("guideline") or "", confidence="high"))
    run.findings = len(out)
    return out, run, []


_SUPPRESS = re.compile(r"checkov(?::|\.io/)skip", re.I)


def _neutralize_suppressions(t: Target, tmpdir: Path) -> Path:
    """Inline ``checkov:skip=`` comments and ``checkov.io/skip`` annotations are text inside an
    untrusted file: they must not silence a check. Files carrying one are reviewed from a copy
    (same name, same line numbers) with the marker defused; others are scanned in place."""
    text = read_text(t.path)
    if not _SUPPRESS.search(text):
        return t.path
    tmpdir.mkdir(parents=True, exist_ok=True)
    dst = tmpdir / t.path.name
    dst.write_text(_SUPPRESS.sub("defused-suppression", text), encoding="utf-8")
    return dst


def _resource(res: str, rel: str) -> str:
    """checkov names Dockerfile resources by path; show the reported path, not a temp copy."""
    if res.startswith("/") and "Dockerfile" in res:
        return rel + "." + res.rsplit(".", 1)[-1] if "." in res.rsplit("/", 1)[-1] else rel
    return res


def run_gixy(targets: list[Target], *, timeout: float = 600) -> tuple[list[Finding], EngineRun, list[Skipped]]:
    run, e = eng.begin("gixy", targets, "gixy-ng not installed")
    if e is None:
        return [], run, []
    t0 = time.time()
    out: list[Finding] = []
    skipped: list[Skipped] = []
    by_abs = {str(t.path): t for t in targets}
    chunk = 200
    for i in range(0, len(targets), chunk):
        part = targets[i:i + chunk]
        try:
            r = eng.run(e, ["-f", "json", *[str(t.path) for t in part]], timeout=timeout)
            data = eng.parse_json_output(r.stdout) if r.stdout.strip() else []
        except Exception as ex:
            skipped += [Skipped(path=t.rel, reason=f"gixy failed: {str(ex)[:120]}") for t in part]
            continue
        for item in data if isinstance(data, list) else []:
            t = by_abs.get(item.get("path") or item.get("file") or "")
            rel = t.rel if t else str(item.get("path", ""))
            msg = item.get("summary", "")
            if item.get("reason"):
                msg += f" {item['reason']}"
            out.append(Finding(rule_id=f"gixy:{item.get('plugin', '')}", engine="gixy", title=item.get("summary", ""),
                               message=msg.strip(), severity=Severity.parse(item.get("severity")),
                               location=_loc(rel, item.get("line") or 1, snippet=str(item.get("config", "")).strip()),
                               explanation=item.get("description", ""), fix=item.get("reference", ""),
                               confidence="high"))
    run.seconds, run.findings = time.time() - t0, len(out)
    return out, run, skipped


def run_hostconf(targets: list[Target], kb: KBMap) -> tuple[list[Finding], EngineRun]:
    run = EngineRun(engine="secfoundry-cac", files=len(targets))
    if not targets:
        run.status = "skipped"
        return [], run
    if not kb.available:
        run.status, run.note = "unavailable", "no knowledge base: ComplianceAsCode checks are derived from it"
        return [], run
    t0 = time.time()
    checks = hostconf.derive(kb)
    run.version = f"{len(checks)} checks from KB ComplianceAsCode rules"
    out: list[Finding] = []
    for t in targets:
        text = read_text(t.path)
        lines = text.splitlines()
        for v in hostconf.evaluate(t.kind, text, checks):
            rec = kb.cac_rule(v.check.rule_id)
            title, fix = hostconf.describe(v.check, rec)
            sev = Severity.parse((rec or {}).get("attributes", {}).get("severity"), Severity.medium)
            snippet = lines[v.line - 1] if 0 < v.line <= len(lines) and v.found != "not set" else ""
            out.append(Finding(rule_id=v.check.rule_id, engine="secfoundry-cac", title=title,
                               message=f"{title}: found `{v.found}`", severity=sev,
                               location=_loc(t.rel, v.line, snippet=snippet), fix=fix,
                               compliance_rules=[v.check.rule_id], confidence="high"))
    run.seconds, run.findings = time.time() - t0, len(out)
    return out, run


# docker-compose has no engine we can run offline (checkov has no compose framework); these
# checks mirror checkov's Kubernetes pod-security checks for the same settings.
_COMPOSE_CHECKS: list[tuple[str, str, str, Any]] = [
    ("SF_COMPOSE_1", "Container runs privileged", "high", lambda s: s.get("privileged") is True),
    ("SF_COMPOSE_2", "Container shares the host network namespace", "high", lambda s: s.get("network_mode") == "host"),
    ("SF_COMPOSE_3", "Container shares the host PID/IPC namespace", "high",
     lambda s: s.get("pid") == "host" or s.get("ipc") == "host"),
    ("SF_COMPOSE_4", "Container adds dangerous capabilities (ALL, SYS_ADMIN, NET_ADMIN, SYS_PTRACE)", "high",
     lambda s: bool({str(c).upper().removeprefix("CAP_") for c in s.get("cap_add") or []}
                    & {"ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE"})),
    ("SF_COMPOSE_5", "Docker socket mounted into a container", "critical",
     lambda s: any("docker.sock" in str(v) for v in s.get("volumes") or [])),
    ("SF_COMPOSE_6", "seccomp/AppArmor confinement disabled", "high",
     lambda s: any(str(o).replace(" ", "") in ("seccomp:unconfined", "apparmor:unconfined", "seccomp=unconfined",
                                               "apparmor=unconfined") for o in s.get("security_opt") or [])),
    ("SF_COMPOSE_7", "Secret passed as a plain environment value", "medium",
     lambda s: any(re.search(r"(?i)(passw(or)?d|secret|token|api_?key)", str(k)) and v not in (None, "")
                   and not str(v).startswith("${") for k, v in _env(s.get("environment")).items())),
    ("SF_COMPOSE_8", "Image not pinned (no tag or 'latest')", "low",
     lambda s: isinstance(s.get("image"), str) and (":" not in s["image"].rsplit("/", 1)[-1]
                                                   or s["image"].endswith(":latest")) and "@sha256:" not in s["image"]),
    ("SF_COMPOSE_9", "Host root or system folder mounted", "high",
     lambda s: any(str(v).split(":")[0] in ("/", "/etc", "/proc", "/sys", "/var/run", "/root", "/boot")
                   for v in s.get("volumes") or [] if isinstance(v, str))),
]
_COMPOSE_MAP = {"SF_COMPOSE_1": ["CWE-250"], "SF_COMPOSE_2": ["CWE-668"], "SF_COMPOSE_3": ["CWE-668"],
                "SF_COMPOSE_4": ["CWE-250"], "SF_COMPOSE_5": ["CWE-250"], "SF_COMPOSE_6": ["CWE-693"],
                "SF_COMPOSE_7": ["CWE-798"], "SF_COMPOSE_8": ["CWE-1357"], "SF_COMPOSE_9": ["CWE-668"]}


def _env(env: Any) -> dict[str, Any]:
    if isinstance(env, dict):
        return env
    out = {}
    for item in env or []:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def run_compose(targets: list[Target]) -> tuple[list[Finding], EngineRun]:
    run = EngineRun(engine="secfoundry-compose", files=len(targets), status="ok" if targets else "skipped")
    out: list[Finding] = []
    for t in targets:
        text = read_text(t.path)
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            continue  # prevalidate() already reported it
        services = doc.get("services") if isinstance(doc, dict) else None
        if not isinstance(services, dict):
            continue
        lines = text.splitlines()
        for name, svc in services.items():
            if not isinstance(svc, dict):
                continue
            line = next((i for i, ln in enumerate(lines, 1) if re.match(rf"\s+{re.escape(str(name))}\s*:", ln)), 1)
            for cid, title, sev, test in _COMPOSE_CHECKS:
                try:
                    hit = test(svc)
                except Exception:
                    hit = False
                if hit:
                    out.append(Finding(rule_id=cid, engine="secfoundry-compose", title=title,
                                       message=f"service '{name}': {title}", severity=Severity(sev),
                                       location=_loc(t.rel, line, snippet=lines[line - 1] if lines else ""),
                                       cwe=_COMPOSE_MAP[cid], confidence="high"))
    run.findings = len(out)
    return out, run


def checkov_mapping(check_id: str, name: str) -> tuple[list[str], list[str]]:
    """CWE and control ids for a checkov check from the ``checkov`` table (regex on the name)."""
    cwe: list[str] = []
    ctl: list[str] = []
    for rule in tables().get("checkov", []):
        if rule.get("fallback") and cwe:
            continue
        if re.search(rule["match"], f"{check_id} {name}", re.I):
            cwe += [c for c in rule.get("cwe", []) if c not in cwe]
            ctl += [c for c in rule.get("controls", []) if c not in ctl]
    return cwe, ctl
