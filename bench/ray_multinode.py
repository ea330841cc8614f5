"""The corpus pipeline on a two-node Ray cluster (head + a separately started worker node, both on
this machine), compared with the local run, then the worker node killed mid-run (issue #15, item 3).

    flock /tmp/sf-bench.lock .venv/bin/python bench/ray_multinode.py [--json bench/results/ray_multinode.json]

What it does, in temporary directories it removes afterwards (Ray sessions included):

1. **local**: the recipe below on a local Ray (the laptop path, ``ray_address=None``);
2. **cluster**: ``ray start --head --num-cpus 1`` and ``ray start --address HEAD --num-cpus 1``
   (own ports, own temp dir), the same recipe with ``ray_address=HEAD`` from a
   separate driver process; every phase's document ids and content hashes must equal the local
   run's, and a probe step records which node ran each batch (work must land on both nodes);
3. **kill**: the same on a fresh cluster, the worker node's whole process tree SIGKILLed once a
   few partitions of the process phase are committed; the driver either finishes (Ray retries
   the lost tasks on the head) or fails and is rerun (the engine's resume); then documents are
   counted by id against the local run: none lost, none duplicated.

The recipe: real connector data from ``../shared/data/mirror`` (CAPEC, KEV, Sigma, OWASP
cheat sheets) + general replay, the process steps that need no trained model (extract,
contenttype, langid, keywords, quality, pii) and the three dedup global steps (exact,
paragraph Bloom, MinHash-LSH), small partitions so there are many tasks.

The module is also imported by ``tests/corpus/test_ray_multinode.py`` (``LocalRayCluster``,
``run_driver``, ``fingerprint_run``, ``NodeProbe``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
SHARED = REPO.parent / "shared" / "data"


# ----------------------------------------------------------------------------------- probe step
@dataclass
class NodeProbeConfig:
    log: str = ""  # file the probe appends "node_id<TAB>pid<TAB>docs" lines to


class NodeProbe:
    """A map step that keeps every document unchanged and appends ``node_id pid docs`` to a log
    file: evidence of where each batch ran. Importable by workers as ``ray_multinode:NodeProbe``
    (bench/ on their PYTHONPATH)."""

    name = "node_probe"
    config_class = NodeProbeConfig

    def __init__(self, config: NodeProbeConfig | None = None):
        self.log = (config or NodeProbeConfig()).log

    def run_batch(self, docs):
        if self.log and docs:
            import ray

            node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
            line = f"{node}\t{os.getpid()}\t{len(docs)}\n".encode()
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)  # one small O_APPEND write: atomic between processes
            finally:
                os.close(fd)
        return docs, []


def probe_counts(log: Path) -> dict[str, int]:
    """Documents per node id from a NodeProbe log."""
    out: dict[str, int] = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            node, _pid, n = line.split("\t")
            out[node] = out.get(node, 0) + int(n)
    return out


# ----------------------------------------------------------------------------------- the cluster
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[Any]:
    import psutil

    try:
        p = psutil.Process(pid)
        return [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill_tree(pid: int, sig: int = signal.SIGKILL, wait: float = 10.0) -> int:
    """Signal a process and all its descendants (a Ray node: raylet, agents, workers); returns
    how many processes were signalled. After ``wait`` seconds, whatever is left is SIGKILLed."""
    import psutil

    procs = _tree(pid)
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=wait)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    return len(procs)


class LocalRayCluster:
    """A real multi-node Ray cluster on one machine: ``ray start --head`` and ``ray start
    --address`` as separate process trees (``--block``), each with its own ports, so one node can
    be killed without touching the other. Everything lives under a temporary directory that
    :meth:`stop` removes; ``ray stop`` is never used (it would stop every Ray on the machine)."""

    def __init__(self, head_cpus: int = 1, object_store_mb: int = 80, env: dict[str, str] | None = None):
        self.head_cpus = head_cpus
        self.object_store = object_store_mb * 1024 * 1024
        # short path: Ray's unix sockets live under it (108-byte limit)
        self.tmp = Path(tempfile.mkdtemp(prefix="sfray-", dir="/tmp"))
        self.port = free_port()
        # the machine's own address, as Ray resolves it (it rewrites 127.0.0.1 to it anyway)
        from ray._private.services import get_node_ip_address

        self.address = f"{get_node_ip_address()}:{self.port}"
        # Ray's token authentication, with a token of this cluster's own: nodes and drivers need
        # RAY_AUTH_MODE=token and the token (``client_env`` for drivers)
        import secrets

        (self.tmp / "auth_token").write_text(secrets.token_hex(32))
        self.client_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.tmp / "auth_token")}
        self.env = {**os.environ, **self.client_env, "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0",
                    # notice a dead node in ~3 s instead of ~30 s
                    "RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                    "RAY_health_check_failure_threshold": "3",
                    "PYTHONPATH": os.pathsep.join(p for p in [str(BENCH), os.environ.get("PYTHONPATH", "")] if p),
                    **(env or {})}
        self.head: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def _start(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        cmd = [str(VENV_BIN / "ray"), "start", "--block", "--object-store-memory", str(self.object_store), "--disable-usage-stats",
               "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
               "--min-worker-port", "0", "--max-worker-port", "0", *args]
        return subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)

    def start_head(self) -> str:
        self.head = self._start(["--head", "--port", str(self.port), "--num-cpus", str(self.head_cpus),
                                 "--include-dashboard", "false", "--temp-dir", str(self.tmp / "ray")], "head")
        return self.address

    def add_worker(self, num_cpus: int = 1) -> subprocess.Popen:
        i = len(self.workers)
        w = self._start(["--address", self.address, "--num-cpus", str(num_cpus),
                         "--temp-dir", str(self.tmp / f"ray-w{i}")], f"worker{i}")
        self.workers.append(w)
        return w

    def wait_nodes(self, n: int, timeout: float = 180.0) -> float:
        """Block until ``n`` nodes are alive (asked from a throwaway driver process); seconds taken."""
        t0 = time.time()
        code = ("import ray,sys,time,logging; ray.init(address=sys.argv[1], logging_level=logging.ERROR, "
                "log_to_driver=False); n=int(sys.argv[2]); d=time.time()+float(sys.argv[3])\n"
                "while sum(x['Alive'] for x in ray.nodes())<n and time.time()<d: time.sleep(0.25)\n"
                "k=sum(x['Alive'] for x in ray.nodes()); print(k); sys.exit(0 if k>=n else 1)")
        r = subprocess.run([sys.executable, "-c", code, self.address, str(n), str(timeout)],
                           env={**os.environ, **self.client_env},
                           capture_output=True, text=True, timeout=timeout + 60)
        if r.returncode != 0:
            raise RuntimeError(f"Ray cluster at {self.address}: {n} nodes not alive after {timeout:.0f} s "
                               f"(stdout {r.stdout[-500:]!r}, stderr {r.stderr[-1500:]!r}); logs in {self.tmp}")
        return time.time() - t0

    def start(self, workers: int = 1, timeout: float = 180.0, attempts: int = 2) -> float:
        """Head + ``workers`` worker nodes, alive; on a loaded machine a node can miss Ray's fixed
        30 s start-up window, so a failed start is torn down and tried again once."""
        t0 = time.time()
        for attempt in range(attempts):
            self.start_head()
            for _ in range(workers):
                self.add_worker()
            try:
                self.wait_nodes(1 + workers, timeout)
                return time.time() - t0
            except RuntimeError:
                if attempt + 1 == attempts:
                    raise
                self._kill_nodes()
                self.workers = []
                self.port = free_port()
                self.address = f"{self.address.rsplit(':', 1)[0]}:{self.port}"
        raise AssertionError("unreachable")

    def kill_worker(self, i: int = 0) -> int:
        """SIGKILL worker node ``i``'s whole process tree (raylet, agents, its Ray workers)."""
        return kill_tree(self.workers[i].pid)

    def logs(self) -> str:
        """The nodes' ``ray start`` output and the tails of their raylet/GCS logs."""
        files = [*self.tmp.glob("*.log"), *self.tmp.glob("ray*/session_*/logs/raylet.out"),
                 *self.tmp.glob("ray*/session_*/logs/raylet.err"), *self.tmp.glob("ray*/session_*/logs/gcs_server.err")]
        return "\n".join(f"--- {p.relative_to(self.tmp)}\n" + p.read_text(errors="replace")[-2000:] for p in files)

    def stop(self) -> None:
        self._kill_nodes()
        if not os.environ.get("SF_KEEP_RAY_TMP"):  # set it to debug a failed cluster
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _kill_nodes(self) -> None:
        for p in [*self.workers, self.head]:
            if p is not None:
                kill_tree(p.pid, signal.SIGTERM, wait=3.0)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass

    def __enter__(self) -> "LocalRayCluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ----------------------------------------------------------------------------------- drivers
DRIVER = """
import json, sys, time
from secfoundry.corpus.pipeline import run_recipe
t0 = time.time()
s = run_recipe(sys.argv[1], sys.argv[2], ray_address=sys.argv[3] or None, progress=False)
print(json.dumps({"seconds": round(time.time() - t0, 2), "phases": [p.to_dict() for p in s.phases]}))
"""


def start_driver(recipe: Path, out: Path, address: str | None, env: dict[str, str] | None = None,
                 log: Path | None = None) -> subprocess.Popen:
    """A corpus-run driver in its own process (a driver can join only one Ray cluster)."""
    e = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
         "PYTHONPATH": os.pathsep.join(p for p in [str(BENCH), os.environ.get("PYTHONPATH", "")] if p), **(env or {})}
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(recipe), str(out), address or ""], env=e, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=open(log, "wb") if log else subprocess.PIPE,
                            start_new_session=True)


def run_driver(recipe: Path, out: Path, address: str | None, timeout: float = 900, **kw: Any) -> dict[str, Any]:
    """Run a driver to the end; returns its JSON summary plus ``rc`` / ``cpu_s`` (children's CPU)."""
    t0 = time.time()
    before = os.times()
    p = start_driver(recipe, out, address, **kw)
    try:
        stdout, stderr = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(p.pid)
        raise
    after = os.times()
    res: dict[str, Any] = {"rc": p.returncode, "wall_s": round(time.time() - t0, 2),
                           "driver_cpu_s": round(after.children_user + after.children_system
                                                 - before.children_user - before.children_system, 2)}
    if p.returncode == 0:
        res.update(json.loads(stdout.decode().strip().splitlines()[-1]))
    else:
        res["stderr"] = (Path(kw["log"]).read_text(errors="replace") if kw.get("log")
                         else (stderr or b"").decode(errors="replace"))[-4000:]
    return res


# ----------------------------------------------------------------------------------- comparison
VOLATILE = ("fetched_at",)  # metadata that records when a connector read its source: differs per run


def fingerprint_run(out: Path) -> dict[str, dict[str, Any]]:
    """Per phase: every kept document id with a hash of its whole row (text, source, url,
    license, version, metadata less ``VOLATILE`` keys), duplicates counted, and the excluded ids."""
    from secfoundry.corpus.pipeline import iter_documents, load_excluded, phase_dirs

    res: dict[str, dict[str, Any]] = {}
    for d in phase_dirs(out):
        hashes: dict[str, str] = {}
        dup = 0
        for doc in iter_documents(out, d.name):
            row = doc.to_row()
            meta = json.loads(row["metadata"]) if isinstance(row.get("metadata"), str) else dict(row.get("metadata") or {})
            row["metadata"] = {k: v for k, v in meta.items() if k not in VOLATILE}
            h = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
            if doc.id in hashes:
                dup += 1
            hashes[doc.id] = h
        excluded = load_excluded(out, d.name).column("id").to_pylist()
        res[d.name] = {"docs": hashes, "duplicates": dup, "excluded": sorted(excluded),
                       "complete": (d / "_SUCCESS").exists()}
    return res


def compare_runs(ref: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Documents lost / extra / duplicated / changed per phase (ids and content hashes)."""
    per_phase = {}
    for phase, r in ref.items():
        g = got.get(phase, {"docs": {}, "duplicates": 0, "excluded": [], "complete": False})
        rd, gd = r["docs"], g["docs"]
        per_phase[phase] = {
            "docs": len(rd), "lost": len(set(rd) - set(gd)), "extra": len(set(gd) - set(rd)),
            "duplicated": g["duplicates"], "changed": sum(1 for k in set(rd) & set(gd) if rd[k] != gd[k]),
            "excluded_equal": r["excluded"] == g["excluded"], "complete": g["complete"]}
    identical = all(not (p["lost"] or p["extra"] or p["duplicated"] or p["changed"]) and p["excluded_equal"]
                    and p["complete"] for p in per_phase.values()) and set(ref) == set(got)
    return {"identical": identical, "phases": per_phase}


# ----------------------------------------------------------------------------------- the bench
def bench_recipe(probe_log: Path, mirror: Path, general: Path, partition_rows: int = 150,
                 names: tuple[str, ...] = ("capec", "kev", "sigma", "owasp"),
                 general_docs: int = 60) -> dict[str, Any]:
    probe = {"step": "ray_multinode:NodeProbe", "log": str(probe_log)}
    return {
        "name": "ray-multinode-bench",
        "mirror": str(mirror),
        "inputs": [{"kind": "sources", "names": list(names)},
                   {"kind": "general", "path": str(general), "max_docs": general_docs}],
        "stages": [
            {"name": "process", "steps": [{"step": "extract"}, {"step": "contenttype"}, {"step": "langid"},
                                          {"step": "keywords", "skip_sources": ["general:*"]},
                                          {"step": "quality"}, {"step": "pii"}, probe]},
            {"name": "prepare", "steps": [{"step": "exact_dedup"}, {"step": "paragraph_dedup"},
                                          {"step": "minhash_dedup"}, probe]},
        ],
        "engine": {"num_cpus": 2, "object_store_mb": 100, "partition_rows": partition_rows, "batch_size": 64,
                   "runtime_env": {"env_vars": {"PYTHONPATH": str(BENCH), "RAY_USAGE_STATS_ENABLED": "0"}}},
    }


def wait_markers(phase_dir: Path, n: int, proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.time() + timeout
    markers = phase_dir / "markers"
    while time.time() < deadline and proc.poll() is None:
        k = len(list(markers.glob("*.json"))) if markers.is_dir() else 0
        if k >= n:
            return k
        time.sleep(0.05)
    return len(list(markers.glob("*.json"))) if markers.is_dir() else 0


def kill_run(work: Path, recipe_of, ref_fp: dict, kill_phase: str, kill_after: int,
             timeout: float = 900) -> dict[str, Any]:
    """A cluster run whose worker node is SIGKILLed once ``kill_after`` partitions of
    ``kill_phase`` are committed; resumed by a second driver if the first one fails."""
    out, log = work / "killed", work / "killed-nodes.log"
    recipe = work / "killed.yaml"
    import yaml

    recipe.write_text(yaml.safe_dump(recipe_of(log)))
    res: dict[str, Any] = {}
    with LocalRayCluster() as cl:
        t0 = time.time()
        res["cluster_start_s"] = round(cl.start(), 2)
        drv = start_driver(recipe, out, cl.address, env=cl.client_env, log=work / "killed-driver.log")
        try:
            seen = wait_markers(out / kill_phase, kill_after, drv, timeout)
            res["partitions_committed_at_kill"] = seen
            res["driver_alive_at_kill"] = drv.poll() is None
            t_kill = time.time()
            res["worker_processes_killed"] = cl.kill_worker(0)
            res["killed_at_s"] = round(t_kill - t0, 2)
            try:
                stdout, _ = drv.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_tree(drv.pid)
                stdout = b""
            res["first_driver_rc"] = drv.returncode
            res["first_driver_s_after_kill"] = round(time.time() - t_kill, 2)
            if drv.returncode != 0:
                res["first_driver_error"] = (work / "killed-driver.log").read_text(errors="replace")[-2000:]
                again = run_driver(recipe, out, cl.address, timeout=timeout, env=cl.client_env,
                                   log=work / "resume-driver.log")
                res["resume"] = {k: again.get(k) for k in ("rc", "wall_s", "stderr") if k in again}
                if again.get("phases"):
                    res["resume"]["skipped_per_phase"] = {p["phase"]: p["skipped"] for p in again["phases"]}
        finally:
            if drv.poll() is None:
                kill_tree(drv.pid)
        res["nodes_used"] = probe_counts(log)
    res["comparison"] = compare_runs(ref_fp, fingerprint_run(out))
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", type=Path, default=SHARED / "mirror")
    ap.add_argument("--general", type=Path, default=SHARED / "datasets" / "general-text")
    ap.add_argument("--partition-rows", type=int, default=150)
    ap.add_argument("--kill-after", type=int, default=4, help="process-phase partitions committed before the kill")
    ap.add_argument("--json", type=Path, default=BENCH / "results" / "ray_multinode.json")
    ap.add_argument("--keep", action="store_true", help="keep the run directories (printed)")
    ap.add_argument("--recompare", type=Path, help="a kept work directory: redo only the comparisons into --json")
    a = ap.parse_args()
    if a.recompare:
        res = json.loads(a.json.read_text()) if a.json.exists() else {}
        ref = fingerprint_run(a.recompare / "local")
        res.setdefault("cluster", {})["comparison"] = compare_runs(ref, fingerprint_run(a.recompare / "cluster"))
        if (a.recompare / "killed").is_dir():
            res.setdefault("kill", {})["comparison"] = compare_runs(ref, fingerprint_run(a.recompare / "killed"))
        a.json.write_text(json.dumps(res, indent=1, default=str))
        print(json.dumps({k: res[k]["comparison"] for k in ("cluster", "kill") if "comparison" in res.get(k, {})},
                         indent=1))
        return 0
    if not a.mirror.is_dir():
        print(f"error: no mirror at {a.mirror}", file=sys.stderr)
        return 2
    import yaml

    work = Path(tempfile.mkdtemp(prefix="sf-raymn-"))
    res: dict[str, Any] = {"load_avg_start": os.getloadavg(), "cpus": os.cpu_count()}

    def recipe_of(log: Path) -> dict[str, Any]:
        return bench_recipe(log, a.mirror.resolve(), a.general.resolve(), a.partition_rows)

    try:
        # 1. local reference (the laptop path: the driver starts its own Ray)
        (work / "local.yaml").write_text(yaml.safe_dump(recipe_of(work / "local-nodes.log")))
        local = run_driver(work / "local.yaml", work / "local", None, log=work / "local-driver.log")
        if local["rc"] != 0:
            raise RuntimeError(f"local run failed: {local.get('stderr', '')[-2000:]}")
        res["local"] = {k: local[k] for k in ("wall_s", "driver_cpu_s", "seconds")}
        res["local"]["phases"] = {p["phase"]: {"partitions": p["partitions"], "docs_in": p["docs_in"],
                                               "docs_out": p["docs_out"]} for p in local["phases"]}
        ref = fingerprint_run(work / "local")
        print(f"local: {local['wall_s']} s, {sum(len(v['docs']) for v in ref.values())} kept rows over phases",
              flush=True)

        # 2. the same recipe on head + worker
        (work / "cluster.yaml").write_text(yaml.safe_dump(recipe_of(work / "cluster-nodes.log")))
        with LocalRayCluster() as cl:
            res["cluster_start_s"] = round(cl.start(), 2)
            clu = run_driver(work / "cluster.yaml", work / "cluster", cl.address, env=cl.client_env,
                             log=work / "cluster-driver.log")
            if clu["rc"] != 0:
                raise RuntimeError(f"cluster run failed: {clu.get('stderr', '')[-2000:]}\n{cl.logs()}")
        res["cluster"] = {k: clu[k] for k in ("wall_s", "driver_cpu_s", "seconds")}
        res["cluster"]["nodes_used"] = probe_counts(work / "cluster-nodes.log")
        res["cluster"]["comparison"] = compare_runs(ref, fingerprint_run(work / "cluster"))
        print(f"cluster: {clu['wall_s']} s, identical={res['cluster']['comparison']['identical']}, "
              f"docs per node {res['cluster']['nodes_used']}", flush=True)

        # 3. kill the worker node mid-run
        res["kill"] = kill_run(work, recipe_of, ref, "01-process", a.kill_after)
        k = res["kill"]
        print(f"kill: first driver rc={k['first_driver_rc']}, resumed={'resume' in k}, "
              f"identical={k['comparison']['identical']}", flush=True)
    finally:
        res["load_avg_end"] = os.getloadavg()
        if a.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps({k: v for k, v in res.items() if k != "local"}, indent=1, default=str)[:6000])
    return 0 if res["cluster"]["comparison"]["identical"] and res["kill"]["comparison"]["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
