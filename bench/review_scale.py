"""Review a generated 10k-file repository with the pattern engines only (bandit + semgrep).

    SECFOUNDRY_HOME=/work/sf-shared-home flock /tmp/sf-bench.lock \
        .venv/bin/python bench/review_scale.py --files 10000 --jobs 2 --out bench/results/review_scale.json

Target (issue #11): <= 120 s wall on 2 cores for the review itself (generation excluded). Records
wall, CPU seconds of this process and every engine subprocess, the load average before/after and
each engine's own time. ``--cli`` runs semgrep through its ``semgrep scan`` front end (the
fallback) instead of calling semgrep-core directly.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

TEMPLATES = {
    ".py": ["import os\n\ndef f{i}(x):\n    return x + {i}\n", "import subprocess\n\ndef run{i}(c):\n    subprocess.call(c, shell=True)\n",
            "def q{i}(cur, v):\n    cur.execute('SELECT * FROM t WHERE a = %s' % v)\n"],
    ".js": ["function f{i}(a) {{ return a + {i}; }}\n", "function g{i}(req) {{ eval(req.body.x); }}\n"],
    ".go": ["package p\n\nfunc F{i}(a int) int {{ return a + {i} }}\n",
            "package p\n\nimport \"crypto/md5\"\n\nfunc H{i}(b []byte) {{ md5.Sum(b) }}\n"],
    ".java": ["class C{i} {{ int f(int a) {{ return a + {i}; }} }}\n"],
    ".c": ["int f{i}(int a) {{ return a + {i}; }}\n", "#include <string.h>\nvoid g{i}(char *d, char *s) {{ strcpy(d, s); }}\n"],
}


def generate(root: Path, n: int, seed: int = 0) -> None:
    rnd = random.Random(seed)
    exts = list(TEMPLATES)
    for i in range(n):
        ext = exts[i % len(exts)]
        d = root / f"pkg{i // 500}"
        d.mkdir(parents=True, exist_ok=True)
        body = rnd.choice(TEMPLATES[ext]).format(i=i)
        (d / f"m{i}{ext}").write_text(body * rnd.randint(1, 8))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="bench/results/review_scale.json")
    ap.add_argument("--cli", action="store_true", help="semgrep through `semgrep scan` (the fallback path)")
    a = ap.parse_args()
    if a.cli:
        os.environ["SECFOUNDRY_SEMGREP_CLI"] = "1"
    from secfoundry.apps.review.kbmap import KBMap
    from secfoundry.apps.review.review import review_code
    from secfoundry.apps.review.schemas import ReviewRequest

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        g0 = time.time()
        generate(root, a.files)
        gen_s = time.time() - g0
        import resource

        load0 = os.getloadavg()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.time()
        res = review_code(ReviewRequest(kind="code", paths=[str(root)], jobs=a.jobs), kb=KBMap.open())
        dt = time.time() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) + (s1.ru_utime - s0.ru_utime + s1.ru_stime - s0.ru_stime)
        load1 = os.getloadavg()
    out = {"files": a.files, "jobs": a.jobs, "semgrep_path": "semgrep scan (CLI)" if a.cli else "semgrep-core direct",
           "seconds": round(dt, 1), "generate_seconds": round(gen_s, 1), "files_reviewed": res.files_reviewed,
           "findings": len(res.findings), "engines": [e.model_dump() for e in res.engines],
           "cpu_seconds": round(cpu, 1), "idle_2core_estimate_seconds": round(cpu / 2, 1),
           "loadavg_before": load0, "loadavg_after": load1, "cpus": os.cpu_count(),
           "target_seconds": 120, "met_wall": dt <= 120, "met_cpu_estimate": cpu / 2 <= 120}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
