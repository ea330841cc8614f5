"""SOC volume bench: ingest rate and Sigma detection time on ~1M events (issue #10).

The volume is made by replaying the shared samples (OTRF Windows/Sysmon exports, Suricata EVE,
Zeek JSON) with shifted timestamps and renamed hosts/IPs: copy k shifts every timestamp by k
hours and renames host ``X`` to ``X-k``, so every record is a new event (new hash) with the same
shape. Then, in a fresh store:

- ``soc ingest`` of the generated JSONL (events/s, wall clock, peak RSS);
- detection with every Sigma rule of the KB (rules pre-compiled; the compile is cached and timed
  separately), DuckDB limited to ``--threads`` threads and ``--memory`` memory.

    flock /tmp/sf-bench.lock .venv/bin/python bench/soc_volume.py --events 1000000 --threads 2 \
        --kb /work/sf-shared-home/kb --work /tmp/soc_bench

The replay files and the compiled rules are cached under ``--work`` (the first run generates
~1.15 GB of JSONL and compiles the rules: a few minutes; later runs only ingest and detect).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
SOC = ROOT.parent / "shared" / "data" / "soc" / "alerts"
TS_KEYS = ("@timestamp", "TimeCreated", "UtcTime", "timestamp", "ts", "_write_ts")
HOST_KEYS = ("Hostname", "Computer")


def samples() -> dict[str, list[dict]]:
    recs: dict[str, list[dict]] = {"windows": [], "suricata": [], "zeek": []}
    for z in sorted((SOC / "windows" / "otrf-security-datasets").glob("*.zip")):
        with zipfile.ZipFile(z) as zf:
            for name in zf.namelist():
                for line in zf.read(name).splitlines():
                    if line.strip():
                        recs["windows"].append(orjson.loads(line))
    for f in sorted((SOC / "suricata").glob("*.jsonl")):
        recs["suricata"] += [orjson.loads(x) for x in f.read_bytes().splitlines() if x.strip()]
    import gzip

    for f in sorted((SOC / "zeek" / "wrccdc2018-zed-sample-data").glob("*.json.gz")):
        recs["zeek"] += [orjson.loads(x) for x in gzip.decompress(f.read_bytes()).splitlines() if x.strip()]
    return recs


def _shift(v: object, k: int) -> object:
    if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] in "T ":
        try:
            head = datetime.fromisoformat(v[:19])
        except ValueError:
            return v
        return (head + timedelta(hours=k)).isoformat(sep=v[10]) + v[19:]
    if isinstance(v, (int, float)) and v > 1e9:
        return v + 3600 * k
    return v


def generate(work: Path, n: int) -> list[Path]:
    """One file per sensor (as they come: a Windows export, an EVE log, Zeek logs), in the samples'
    proportions, ``n`` events in all."""
    base = samples()
    total = sum(len(v) for v in base.values())
    paths = []
    for fmt, recs in base.items():
        want = round(n * len(recs) / total)
        path = work / f"replay_{n}_{fmt}.jsonl"
        paths.append(path)
        if path.exists():
            continue
        out = 0
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            k = 0
            while out < want:
                for r in recs:
                    if out >= want:
                        break
                    if k:
                        r = dict(r)
                        for key in TS_KEYS:
                            if key in r:
                                r[key] = _shift(r[key], k)
                        for key in HOST_KEYS:
                            if key in r and isinstance(r[key], str):
                                r[key] = f"{r[key]}-{k}"
                        r["_replay"] = k
                    f.write(orjson.dumps(r) + b"\n")
                    out += 1
                k += 1
        tmp.replace(path)  # a killed run leaves no partial file behind
    return paths


def cpu_s() -> float:
    """CPU seconds of this process (all its threads): a load-independent companion to wall time."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", default="4GB")
    ap.add_argument("--kb", default=os.environ.get("SECFOUNDRY_KB", "/work/sf-shared-home/kb"))
    ap.add_argument("--work", default="/tmp/soc_bench")
    ap.add_argument("--out", default=str(ROOT / "results" / "soc_volume.json"))
    ap.add_argument("--skip-ingest", action="store_true", help="reuse the store from a previous run")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SECFOUNDRY_HOME", str(work / "home"))
    os.environ["SECFOUNDRY_SOC_THREADS"] = str(a.threads)
    os.environ["SECFOUNDRY_SOC_MEMORY"] = a.memory
    t = time.perf_counter()
    data = generate(work, a.events)
    print(f"generated/reused {a.events} events in {time.perf_counter() - t:.1f}s -> {data}", file=sys.stderr)
    from secfoundry.apps.soc.detect import detect
    from secfoundry.apps.soc.ingest import ingest
    from secfoundry.apps.soc.pipeline import open_kb
    from secfoundry.apps.soc.rules import load_rules
    from secfoundry.apps.soc.store import Store

    db = work / "bench.duckdb"
    res: dict = {"events_requested": a.events, "threads": a.threads, "memory_limit": a.memory,
                 "load_before": os.getloadavg(), "cpus": os.cpu_count()}
    if not a.skip_ingest:
        for p in (db, Path(str(db) + ".wal")):
            p.unlink(missing_ok=True)
        with Store(db) as st:
            per_file, read, inserted, errors, tw, tc = [], 0, 0, 0, 0.0, 0.0
            for p in data:  # one sensor file at a time: the rate per format
                t, c = time.perf_counter(), cpu_s()
                rep = ingest([str(p)], st)
                dt, dc = time.perf_counter() - t, cpu_s() - c
                per_file.append({"file": p.name, "bytes": p.stat().st_size, "read": rep.read, "seconds": round(dt, 2),
                                 "cpu_seconds": round(dc, 1), "events_per_s": round(rep.read / dt)})
                print(json.dumps(per_file[-1]), file=sys.stderr)
                read, inserted, errors = read + rep.read, inserted + rep.inserted, errors + rep.error_count
                tw, tc = tw + dt, tc + dc
            res["ingest"] = {"read": read, "inserted": inserted, "errors": errors, "seconds": round(tw, 2),
                             "events_per_s": round(read / tw), "cpu_seconds": round(tc, 1),
                             "events_per_cpu_s": round(read / max(tc, 1e-9)), "load_during": os.getloadavg(),
                             "files": per_file}
            print(json.dumps({k: v for k, v in res["ingest"].items() if k != "files"}), file=sys.stderr)
            t, c = time.perf_counter(), cpu_s()
            rep2 = ingest([str(p) for p in data], st)
            res["reingest"] = {"inserted": rep2.inserted, "duplicates": rep2.duplicates,
                               "seconds": round(time.perf_counter() - t, 2), "cpu_seconds": round(cpu_s() - c, 1)}
            print(json.dumps(res["reingest"]), file=sys.stderr)
    kb = open_kb(a.kb)
    t = time.perf_counter()
    rs = load_rules(None, kb)
    res["rules"] = {"compiled_or_cached_s": round(time.perf_counter() - t, 2), "rules": len({r.id for r in rs.rules}),
                    "variants_run_on_security_events": sum(1 for r in rs.rules if r.variant),
                    "skipped": rs.skipped}
    with Store(db) as st:
        res["events_in_store"] = st.count()
        t, c = time.perf_counter(), cpu_s()
        alerts, drep = detect(st, rs)
        dt, dc = time.perf_counter() - t, cpu_s() - c
        res["detect"] = {"seconds": round(dt, 2), "cpu_seconds": round(dc, 1), "load_during": os.getloadavg(),
                         "events_per_s": round(res["events_in_store"] / dt), "rules_run": drep.rules_run,
                         "rules_without_events": drep.rules_without_events, "rules_failed": drep.rules_failed,
                         "hits": drep.hits, "alerts": len(alerts), "sigma_alerts": drep.sigma_alerts}
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    res["load_after"] = os.getloadavg()
    res["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
