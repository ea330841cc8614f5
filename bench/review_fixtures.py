"""Precision / recall of `secfoundry review` on the labelled scanner fixtures in ../shared/data/soc.

    SECFOUNDRY_HOME=... .venv/bin/python bench/review_fixtures.py --out bench/results/review_fixtures.json

Suites (ground truth = the upstream project's own expected results, see soc/README.md):
- bandit-examples: (file, line, CWE) from bandit 1.9.4's output. Bare bandit vs the review layer
  (bandit --ignore-nosec + shipped semgrep rules, CWE ids validated against the KB).
- codeql-go: CodeQL's .expected alert lines + query CWE tags; ours = shipped semgrep Go rules.
  Line match within +-2 lines and CWE overlap; also file level (vulnerable vs *Good* files).
- gosec-samples: expected issue count per sample (no lines upstream): file level per CWE.
- checkov dockerfile/kubernetes: PASSED/FAILED per (file, check); terraform: failing/passing
  resource addresses per check. Bare checkov vs layer (same engine + suppression comments defused
  + mapping); mapping coverage = share of findings with CWE and NIST controls.
- gixy: finding expected vs *_fp.conf per plugin.
- sshd (ComplianceAsCode): the bash scenario's echoed directives form the sshd_config; expected
  pass/fail from the file name; ours = checks derived from the KB's rule text.
Every run's SARIF is validated against the SARIF 2.1.0 schema.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOC = ROOT.parent / "shared" / "data" / "soc"


def prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0}


def manifest(name: str) -> list[dict]:
    return [json.loads(x) for x in (SOC / name / "manifest.jsonl").read_text().splitlines() if x.strip()]


def sarif_ok(res) -> int:
    from secfoundry.apps.review.sarif import to_sarif, validate

    return len(validate(to_sarif(res)))


# -- code ------------------------------------------------------------------------------------------------

def bench_bandit(kb) -> dict:
    from secfoundry.apps.review.review import review_code
    from secfoundry.apps.review.schemas import ReviewRequest

    rows = [m for m in manifest("code") if m["path"].startswith("code/bandit-examples/")]
    truth = {(Path(m["path"]).name, f["line"], f["cwe"]) for m in rows for f in m.get("findings", [])}
    files = [str(SOC / m["path"]) for m in rows]
    r = subprocess.run([sys.executable, "-m", "bandit", "-f", "json", "-q", *files], capture_output=True, text=True)
    bare = {(Path(x["filename"]).name, x["line_number"], f"CWE-{x['issue_cwe']['id']}")
            for x in json.loads(r.stdout)["results"] if x.get("issue_cwe")}
    res = review_code(ReviewRequest(kind="code", paths=files), kb=kb)
    layer = {(Path(f.location.file).name, f.location.start_line, c) for f in res.findings for c in f.cwe}
    layer_bandit = {(Path(f.location.file).name, f.location.start_line, c) for f in res.findings
                    if f.engine == "bandit" for c in f.cwe}
    out = {"files": len(files), "bare_bandit": _score(truth, bare), "layer_bandit_only": _score(truth, layer_bandit),
           "layer_all": _score(truth, layer), "sarif_errors": sarif_ok(res),
           "note": "labels are bandit 1.9.4's own output (nosec honoured); the layer ignores nosec and adds semgrep"}
    return out


def _score(truth: set, pred: set) -> dict:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for t in truth:
        per[t[2]][0 if t in pred else 2] += 1
    for p in pred - truth:
        per[p[2]][1] += 1
    tot = [sum(v[i] for v in per.values()) for i in range(3)]
    return {"overall": prf(*tot), "per_cwe": {k: prf(*v) for k, v in sorted(per.items())}}


def bench_go(kb) -> dict:
    from secfoundry.apps.review.review import review_code
    from secfoundry.apps.review.schemas import ReviewRequest

    rows = [m for m in manifest("code") if m["path"].startswith(("code/codeql-go/", "code/gosec-samples/"))]
    files = [str(SOC / m["path"]) for m in rows]
    t0 = time.time()
    res = review_code(ReviewRequest(kind="code", paths=files, engines=["semgrep"]), kb=kb)
    secs = time.time() - t0
    by_file: dict[str, list] = defaultdict(list)
    for f in res.findings:
        by_file[str(Path(f.location.file).resolve())].append(f)
    # codeql-go, line level
    line = defaultdict(lambda: [0, 0, 0])
    filelvl = defaultdict(lambda: [0, 0, 0])
    for m in rows:
        p = str((SOC / m["path"]).resolve())
        found = by_file.get(p, [])
        cwes = set(m.get("cwe") or [])
        if m["path"].startswith("code/codeql-go/"):
            alerts = m.get("alerts") or []
            matched = set()
            for a in alerts:
                key = a["cwes"][0] if a.get("cwes") else "?"
                hit = [f for f in found if abs(f.location.start_line - a["line"]) <= 2 and set(f.cwe) & set(a["cwes"])]
                line[key][0 if hit else 2] += 1
                matched |= {id(f) for f in hit}
            if m.get("label") == "ok":
                for f in found:
                    if set(f.cwe) & cwes:
                        line[sorted(cwes)[0]][1] += 1
            elif alerts:
                for f in found:
                    if id(f) not in matched and set(f.cwe) & cwes:
                        line[sorted(cwes)[0]][1] += 1
        if m.get("label") not in ("vulnerable", "ok") or not cwes:
            continue
        pos = m["label"] == "vulnerable"
        pred = any(set(f.cwe) & cwes for f in found)
        k = sorted(cwes)[0]
        if pos and pred:
            filelvl[k][0] += 1
        elif pred:
            filelvl[k][1] += 1
        elif pos:
            filelvl[k][2] += 1
    tot_l = [sum(v[i] for v in line.values()) for i in range(3)]
    tot_f = [sum(v[i] for v in filelvl.values()) for i in range(3)]
    return {"files": len(files), "seconds": round(secs, 1), "codeql_line_level": {"overall": prf(*tot_l),
            "per_cwe": {k: prf(*v) for k, v in sorted(line.items())}},
            "file_level_codeql_and_gosec": {"overall": prf(*tot_f), "per_cwe": {k: prf(*v) for k, v in sorted(filelvl.items())}},
            "sarif_errors": sarif_ok(res),
            "note": "no bare engine: the Go rules are ours (gosec/CodeQL are not runnable here)"}


# -- config ----------------------------------------------------------------------------------------------

def _checkov_bare(files: list[Path]) -> list[dict]:
    from secfoundry.apps.review import engines

    e = engines.find("checkov")
    args = ["-o", "json", "--quiet", "--compact", "--skip-download", "--framework", "dockerfile", "kubernetes", "terraform"]
    for f in files:
        args += ["-f", str(f)]
    data = engines.parse_json_output(engines.run(e, args).stdout)
    out = []
    for rep in data if isinstance(data, list) else [data]:
        for fc in (rep.get("results") or {}).get("failed_checks", []):
            out.append((str(Path(fc.get("file_abs_path", "")).resolve()), fc["check_id"], fc.get("resource", "")))
    return out


def bench_checkov(kb) -> dict:
    from secfoundry.apps.review.review import review_config
    from secfoundry.apps.review.schemas import ReviewRequest

    rows = [m for m in manifest("configs") if m.get("kind") in ("dockerfile", "kubernetes", "terraform")]
    files = sorted({(SOC / m["path"]).resolve() for m in rows})
    t0 = time.time()
    bare = _checkov_bare(files)
    t_bare = time.time() - t0
    res = review_config(ReviewRequest(kind="config", paths=[str(f) for f in files], engines=["checkov"]), kb=kb)
    t_layer = time.time() - t0 - t_bare
    layer = [(str(Path(f.location.file).resolve()), f.rule_id,
              (re.search(r"\(resource (.+)\)$", f.message) or [None, ""])[1]) for f in res.findings]
    out = {"files": len(files), "seconds_bare": round(t_bare, 1), "seconds_layer": round(t_layer, 1)}
    for name, preds in (("bare_checkov", bare), ("layer", layer)):
        per = defaultdict(lambda: [0, 0, 0])
        failed = {(p, c) for p, c, _ in preds}
        res_failed = {(p, c, r.split(".", 1)[-1] if r.count(".") else r) for p, c, r in preds}
        for m in rows:
            p, cid = str((SOC / m["path"]).resolve()), m["check_id"]
            exp = m.get("expected_for_file")
            if exp in ("FAILED", "PASSED"):
                got = (p, cid) in failed
                if got or exp == "FAILED":  # (PASSED, not reported) is a true negative
                    per[cid][0 if got and exp == "FAILED" else 1 if got else 2] += 1
                else:
                    per[cid]  # noqa: B018 - the check is counted even with only negatives
            elif m["kind"] == "terraform":
                names = {x for (pp, c, x) in res_failed if pp == p and c == cid}
                fulls = {r for (pp, c, r) in preds if pp == p and c == cid}
                for addr in m.get("test_failing_resources") or []:
                    per[cid][0 if addr in fulls or addr.split(".", 1)[-1] in names else 2] += 1
                for addr in m.get("test_passing_resources") or []:
                    if addr in fulls:
                        per[cid][1] += 1
        tot = [sum(v[i] for v in per.values()) for i in range(3)]
        out[name] = {"overall": prf(*tot), "checks": len(per),
                     "checks_recall_1": sum(1 for v in per.values() if v[2] == 0),
                     "per_check": {k: prf(*v[:3]) for k, v in sorted(per.items())}}
    mapped = [f for f in res.findings]
    out["mapping_coverage"] = {"findings": len(mapped), "with_cwe": sum(bool(f.cwe) for f in mapped),
                               "with_controls": sum(bool(f.controls) for f in mapped),
                               "with_fix_or_guidance": sum(bool(f.fix or f.guidance) for f in mapped)}
    out["sarif_errors"] = sarif_ok(res)
    return out


def bench_gixy(kb) -> dict:
    from secfoundry.apps.review.review import review_config
    from secfoundry.apps.review.schemas import ReviewRequest

    rows = [m for m in manifest("configs") if str(m.get("check_id", "")).startswith("gixy:") and m["path"].endswith(".conf")]
    files = [str(SOC / m["path"]) for m in rows]
    # gixy fixtures are fragments named *.conf outside an nginx folder: classify them as nginx
    from secfoundry.apps.review import config_engines
    from secfoundry.apps.review.files import Target

    targets = [Target(path=Path(f).resolve(), rel=f, kind="nginx") for f in files]
    found, run, _ = config_engines.run_gixy(targets)
    hits = {(str(Path(f.location.file).resolve()), f.rule_id) for f in found}
    per = defaultdict(lambda: [0, 0, 0])
    for m in rows:
        got = (str((SOC / m["path"]).resolve()), m["check_id"]) in hits
        exp = bool(m.get("expected_finding"))
        if got and exp:
            per[m["check_id"]][0] += 1
        elif got:
            per[m["check_id"]][1] += 1
        elif exp:
            per[m["check_id"]][2] += 1
    tot = [sum(v[i] for v in per.values()) for i in range(3)]
    return {"files": len(files), "engine": f"gixy-ng {run.version}", "overall": prf(*tot),
            "per_plugin": {k: prf(*v) for k, v in sorted(per.items())}}


def _sshd_from_scenario(text: str) -> str:
    lines = []
    for m in re.finditer(r"""echo\s+(?:-e\s+)?(["'])(.*?)\1\s*>>""", text):
        lines.append(m.group(2).replace("\\n", "\n"))
    for m in re.finditer(r"""assert_directive_in_file\s+\S+\s+\S+\s+(["'])(.*?)\1""", text):
        lines.append(m.group(2))
    for m in re.finditer(r"""parameter=["'](\w+)["'],\s*value=["']([^"']+)["']""", text):  # Jinja remediation macro
        lines.append(f"{m.group(1)} {m.group(2)}")
    for m in re.finditer(r"""sed -i\s+["']s/\^(\w+)\.\*/(.*?)/["']""", text):
        if not any(x.startswith(m.group(1)) for x in lines):
            lines.append(m.group(2))
    return "\n".join(lines) + "\n"


def bench_sshd(kb) -> dict:
    from secfoundry.apps.review import hostconf

    checks = hostconf.derive(kb)
    rows = [m for m in manifest("configs") if m.get("expected_result") in ("pass", "fail")]
    per = defaultdict(lambda: {"correct": 0, "total": 0, "tp": 0, "fp": 0, "fn": 0})
    for m in rows:
        cfg = _sshd_from_scenario((SOC / m["path"]).read_text())
        mine = [c for c in checks if c.rule_id == f"cac:{m['rule_id']}"]
        pred_fail = bool(hostconf.evaluate("sshd", cfg, mine)) if mine else False
        exp_fail = m["expected_result"] == "fail"
        s = per[m["rule_id"]]
        s["total"] += 1
        s["correct"] += int(pred_fail == exp_fail)
        s["tp"] += int(pred_fail and exp_fail)
        s["fp"] += int(pred_fail and not exp_fail)
        s["fn"] += int(exp_fail and not pred_fail)
        s["derived"] = bool(mine)
    tot = {k: sum(v[k] for v in per.values()) for k in ("correct", "total", "tp", "fp", "fn")}
    return {"scenarios": tot["total"], "accuracy": round(tot["correct"] / max(1, tot["total"]), 3),
            "fail_detection": prf(tot["tp"], tot["fp"], tot["fn"]), "per_rule": dict(per),
            "note": "scenarios are bash scripts for a real host; the config is approximated from their echo/sed lines"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/review_fixtures.json")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    if not SOC.exists():
        sys.exit(f"shared data missing: {SOC}")
    from secfoundry.apps.review.kbmap import KBMap

    kb = KBMap.open()
    if not kb.available:
        sys.exit("no KB: set SECFOUNDRY_HOME to a synced home")
    out = {}
    for name, fn in (("bandit", bench_bandit), ("go", bench_go), ("checkov", bench_checkov), ("gixy", bench_gixy),
                     ("sshd", bench_sshd)):
        if a.only and name not in a.only.split(","):
            continue
        t0 = time.time()
        out[name] = fn(kb)
        out[name]["wall_seconds"] = round(time.time() - t0, 1)
        out[name]["loadavg"] = os.getloadavg()
        _save(a.out, out, merge=bool(a.only))
        print(name, json.dumps({k: v for k, v in out[name].items() if not isinstance(v, dict) or "overall" in v}
                               , default=str)[:1500], flush=True)


def _save(path: str, out: dict, merge: bool) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    prev = json.loads(p.read_text()) if p.exists() and merge else {}
    prev.update(out)
    p.write_text(json.dumps(prev, indent=2, default=str))


if __name__ == "__main__":
    main()
