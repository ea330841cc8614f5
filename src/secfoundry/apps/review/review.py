"""Entry points: ``review_config`` and ``review_code`` (library API behind the CLI and service).

    from secfoundry.apps.review import review_code
    result = review_code(["src/"])          # ReviewResult (schemas.py)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from secfoundry.apps.review import code_engines, config_engines
from secfoundry.apps.review.files import walk
from secfoundry.apps.review.kbmap import KBMap
from secfoundry.apps.review.layer import dedupe, enrich
from secfoundry.apps.review.schemas import Finding, ReviewRequest, ReviewResult

CONFIG_ENGINES = ("checkov", "gixy", "secfoundry-cac", "secfoundry-compose")
CODE_ENGINES = ("bandit", "semgrep")


def _want(req: ReviewRequest, name: str) -> bool:
    return req.engines is None or name in req.engines


def _finish(res: ReviewResult, findings: list[Finding], kb: KBMap, req: ReviewRequest) -> ReviewResult:
    if req.enrich:
        findings = [enrich(f, kb) for f in findings]
    findings = dedupe(findings)
    findings.sort(key=lambda f: (f.location.file, f.location.start_line, f.rule_id))
    res.findings = findings
    if not kb.available:
        res.notes.append("no knowledge base found: CWE/control ids are the engines' own, not validated; "
                         "host-config (ComplianceAsCode) checks need the KB (secfoundry kb sync)")
    if kb.rejected:
        res.notes.append("ids dropped because the KB does not know them: " + ", ".join(sorted(kb.rejected)))
    if req.llm:
        from secfoundry.apps.review.llm_pass import llm_review

        llm_review(res, req.llm, kb)
    return res


def review_config(req: ReviewRequest | list[str], *, kb: KBMap | None = None) -> ReviewResult:
    if not isinstance(req, ReviewRequest):
        req = ReviewRequest(kind="config", paths=[str(p) for p in req])
    kb = kb or KBMap.open()
    w = walk(req.paths, "config", max_bytes=req.max_file_bytes)
    res = ReviewResult(kind="config", root=str(w.root), skipped=list(w.skipped))
    targets, bad = config_engines.prevalidate(w.targets)
    res.skipped += bad
    res.files_reviewed = len(targets)
    findings: list[Finding] = []
    iac = [t for t in targets if t.kind in config_engines.CHECKOV_FRAMEWORK]
    if _want(req, "checkov"):
        f, run, sk = config_engines.run_checkov(iac)
        findings += f
        res.engines.append(run)
        res.skipped += sk
    if _want(req, "gixy"):
        f, run, sk = config_engines.run_gixy([t for t in targets if t.kind == "nginx"])
        findings += f
        res.engines.append(run)
        res.skipped += sk
    if _want(req, "secfoundry-cac"):
        f, run = config_engines.run_hostconf([t for t in targets if t.kind in ("sshd", "sysctl", "sudoers", "apache")], kb)
        findings += f
        res.engines.append(run)
    if _want(req, "secfoundry-compose"):
        f, run = config_engines.run_compose([t for t in targets if t.kind == "compose"])
        findings += f
        res.engines.append(run)
    for r in res.engines:
        if r.status == "unavailable" and r.files:
            res.notes.append(f"{r.engine}: {r.note}; {r.files} file(s) not reviewed by it")
    return _finish(res, findings, kb, req)


def review_code(req: ReviewRequest | list[str], *, kb: KBMap | None = None) -> ReviewResult:
    if not isinstance(req, ReviewRequest):
        req = ReviewRequest(kind="code", paths=[str(p) for p in req])
    kb = kb or KBMap.open()
    w = walk(req.paths, "code", max_bytes=req.max_file_bytes)
    res = ReviewResult(kind="code", root=str(w.root), skipped=list(w.skipped), files_reviewed=len(w.targets))
    findings: list[Finding] = []
    jobs = []
    if _want(req, "bandit"):
        jobs.append(lambda: code_engines.run_bandit(w.targets, jobs=req.jobs))
    if _want(req, "semgrep"):
        jobs.append(lambda: code_engines.run_semgrep(w.targets, jobs=req.jobs))
    # the engines are separate processes: run them side by side (bandit is single-threaded)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as ex:
        for f, run, sk in ex.map(lambda j: j(), jobs):
            findings += f
            res.engines.append(run)
            res.skipped += sk
    for r in res.engines:
        if r.status == "unavailable" and r.files:
            res.notes.append(f"{r.engine}: {r.note}; {r.files} file(s) not reviewed by it")
    langs = sorted({t.kind for t in w.targets})
    if langs:
        res.notes.append("languages: " + ", ".join(langs))
    return _finish(res, findings, kb, req)
