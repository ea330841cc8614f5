"""Load bench for ``secfoundry serve`` (issue #17), loopback only, bounded.

Starts the real server (``python -m secfoundry serve``) on 127.0.0.1 with a temporary
SECFOUNDRY_HOME and an existing KB (read only), then:

1. start to ready: seconds from process start to ``/healthz`` 200, and the server's CPU seconds
   by then (wall time is meaningless on a loaded shared machine; CPU time is not);
2. for each endpoint (KB lookup ``/kb/{id}``, KB search ``/kb/search``, ``/intel/map-cwe`` when
   the server has it): 16 concurrent clients x a fixed request count, twice; throughput,
   p50/p99 latency, errors, and the server's open fds and RSS after each round (growth between
   round 1 and round 2 = leak).

    .venv/bin/python bench/serve_load.py --kb /work/sf-shared-home/kb [--clients 16] [--requests 100]

Writes runs/bench/serve_load.json and prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from urllib.parse import quote
import psutil

REPO = Path(__file__).resolve().parents[1]
IDS = ["T1059.001", "T1003.001", "CWE-79", "CWE-89", "CVE-2024-3400", "CAPEC-66", "AC-2", "T1566.001", "G0007",
       "CWE-787", "T1190", "CVE-2021-44228"]
QUERIES = ["credential dumping from lsass memory", "sql injection in login form", "powershell download cradle",
           "ransomware encrypts files", "phishing attachment macro", "account management controls",
           "buffer overflow in network service", "kerberoasting service tickets"]
CVE_TEXTS = ["A SQL injection vulnerability in the login form of Acme CMS 2.1 allows remote attackers to execute "
             "arbitrary SQL commands via the username parameter.",
             "Cross-site scripting in the search page of WidgetShop allows attackers to inject arbitrary web script "
             "via the q parameter.",
             "A heap-based buffer overflow in the TLS handshake parser of FooServer 3.x allows remote attackers to "
             "cause a denial of service or execute code via a crafted ClientHello.",
             "Path traversal in the file download endpoint lets unauthenticated users read arbitrary files via ../"]


def kb_ids(kb: str, n: int) -> list[str]:
    """``n`` distinct ids spread evenly over the KB (read only), after the named ones."""
    import sqlite3

    db = Path(kb) / "kb.sqlite" if Path(kb).is_dir() else Path(kb)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    ids = [r[0] for r in con.execute("SELECT DISTINCT id FROM records ORDER BY id") if "/" not in r[0]]
    con.close()
    step = max(1, len(ids) // n)
    return list(dict.fromkeys(IDS + ids[::step]))[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


class RawClient:
    """One keep-alive HTTP/1.1 connection sending pre-encoded requests and reading answers by
    Content-Length (or chunks). A load generator must not compete with the server it measures:
    on 2 cores httpx spends ~2 ms of client CPU per request, more than the server's lookup, so
    16 httpx clients saturate their own core and their queueing shows up as "server" latency.
    This client costs tens of microseconds per request (measured: ``client_cpu_ms_per_request``)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.r, self.w = await asyncio.open_connection(self.host, self.port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.w is None:
            await self._open()
        assert self.r is not None and self.w is not None
        self.w.write(raw)
        head = await self.r.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        low = head.lower()
        i = low.find(b"\r\ncontent-length:")
        if i >= 0:
            body = await self.r.readexactly(int(low[i + 17:low.index(b"\r\n", i + 2)]))
        elif b"transfer-encoding: chunked" in low:
            parts = []
            while True:
                size = int((await self.r.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.r.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:
            body = b""
        if b"\r\nconnection: close" in low:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.w is not None:
            self.w.close()
            try:
                await self.w.wait_closed()
            except OSError:
                pass
        self.r = self.w = None


def encode(port: int, key: str, method: str, path: str, kw: dict) -> bytes:
    """The request's bytes, as httpx would send them (JSON body for ``json=``, query for ``params=``)."""
    if kw.get("params"):
        from urllib.parse import urlencode

        path += "?" + urlencode(kw["params"])
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
    body = b""
    if "json" in kw:
        body = json.dumps(kw["json"]).encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def round_(url: str, headers: dict, make_req, clients: int, per_client: int, client: str = "raw") -> dict:
    """``clients`` closed-loop clients (each sends its next request when the last one answered),
    ``per_client`` requests each; latency per request, client CPU per request."""
    lat: list[float] = []
    errors: list[str] = []
    port = int(url.rsplit(":", 1)[1])
    key = headers["Authorization"].split(" ", 1)[1]
    cpu0 = time.process_time()
    if client == "raw":
        conns = [RawClient("127.0.0.1", port) for _ in range(clients)]
        reqs = [[encode(port, key, *make_req(w * per_client + i)) for i in range(per_client)] for w in range(clients)]

        async def worker(w: int) -> None:
            for i, raw in enumerate(reqs[w]):
                t0 = time.perf_counter()
                try:
                    status, _ = await conns[w].request(raw)
                    if status != 200:
                        errors.append(f"{status} {raw[:60]!r}")
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    errors.append(f"{type(e).__name__} {raw[:60]!r}")
                    await conns[w].close()
                lat.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        wall = time.perf_counter() - t0
        for c in conns:
            await c.close()
    else:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300, limits=limits) as c:
            async def hworker(w: int) -> None:
                for i in range(per_client):
                    method, path, kw = make_req(w * per_client + i)
                    t0 = time.perf_counter()
                    try:
                        r = await c.request(method, path, **kw)
                        if r.status_code != 200:
                            errors.append(f"{r.status_code} {path}")
                    except httpx.HTTPError as e:
                        errors.append(f"{type(e).__name__} {path}")
                    lat.append((time.perf_counter() - t0) * 1000)

            t0 = time.perf_counter()
            await asyncio.gather(*(hworker(w) for w in range(clients)))
            wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {"requests": len(lat), "errors": len(errors), "error_examples": errors[:5], "seconds": round(wall, 2),
            "rps": round(len(lat) / wall, 1), "p50_ms": round(statistics.median(lat), 1),
            "p90_ms": round(pct(lat, 90), 1), "p99_ms": round(pct(lat, 99), 1), "max_ms": round(max(lat), 1),
            "client": client, "client_cpu_ms_per_request": round(cpu * 1000 / max(len(lat), 1), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", required=True, help="an existing KB dir (opened read only by the bench's usage)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=100, help="per client per round")
    ap.add_argument("--map-cwe-requests", type=int, default=25, help="per client per round for map-cwe")
    ap.add_argument("--search-requests", type=int, default=25, help="per client per round for kb search")
    ap.add_argument("--home", default=str(REPO / "runs" / "bench" / "serve_load_home"),
                    help="SECFOUNDRY_HOME for the server. Its serve/ part (keys, jobs, audit) is wiped at start; "
                         "its intel/models cache is kept, so the map-cwe model is fitted by the first run only "
                         "(~80 s quiet) and loaded by later ones (default: runs/bench/serve_load_home)")
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw",
                    help="load generator: a minimal keep-alive HTTP/1.1 client (default) or httpx (costs ~2 ms of "
                         "client CPU per request on this machine: it competes with the server for the 2 cores)")
    ap.add_argument("--ids", type=int, default=2000, help="distinct ids looked up (round 1 cold, round 2 cached)")
    ap.add_argument("--only", default="", help="bench only the endpoints whose name contains this (e.g. lookup)")
    ap.add_argument("--server-cmd", default="", help="prefix for the server command (e.g. 'python -m cProfile -o "
                                                     "/tmp/p.prof'): replaces 'python' in 'python -m secfoundry serve'")
    ap.add_argument("--out", default=str(REPO / "runs" / "bench" / "serve_load.json"))
    args = ap.parse_args()

    home = Path(args.home)
    home.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(home / "serve", ignore_errors=True)  # fresh keys/jobs/audit; the fitted models stay
    env = dict(os.environ, SECFOUNDRY_HOME=str(home))
    cli = [sys.executable, "-m", "secfoundry"]
    key = subprocess.run(cli + ["serve", "keys", "add", "bench"], env=env, capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    log = open(home / "server.log", "w")  # a file, not a pipe nobody drains (a full pipe blocks the server)
    server = (args.server_cmd.split() + ["-m", "secfoundry"]) if args.server_cmd else cli
    proc = subprocess.Popen(server + ["serve", "--port", str(port), "--kb", args.kb, "--rate", "100000000",
                                   "--burst", "100000000", "--model", "none", "--timeout", "300"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    result: dict = {"clients": args.clients, "client": args.client, "started_utc": time.strftime("%Y-%m-%d %H:%M:%S"), "loadavg_before": [round(x, 2) for x in load_before],
                    "cpu_count": os.cpu_count()}
    try:
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.02)
        ready_s = time.perf_counter() - t_start
        cpu = ps.cpu_times()
        result["start_to_ready_s"] = round(ready_s, 2)
        result["start_cpu_s"] = round(cpu.user + cpu.system, 2)
        h = {"Authorization": f"Bearer {key}"}
        ids = kb_ids(args.kb, args.ids)
        result["distinct_ids"] = len(ids)
        result["readyz_at_start"] = httpx.get(url + "/readyz").json()["loaded"]
        endpoints = {
            "kb lookup GET /kb/{id}": lambda i: ("GET", f"/kb/{quote(ids[i % len(ids)], safe='')}", {}),
            "kb search GET /kb/search": lambda i: ("GET", "/kb/search", {"params": {"q": QUERIES[i % len(QUERIES)]}}),
        }
        paths = httpx.get(url + "/openapi.json").json()["paths"]
        if "/intel/map-cwe" in paths:
            endpoints["map-cwe POST /intel/map-cwe"] = lambda i: ("POST", "/intel/map-cwe",
                                                                  {"json": {"description": CVE_TEXTS[i % len(CVE_TEXTS)]}})
        else:
            result["map_cwe"] = "not measured: this server has no /intel/map-cwe (app not in this checkout)"
        result["endpoints"] = {}
        endpoints = {k: v for k, v in endpoints.items() if args.only in k}
        for name, make in endpoints.items():
            n = (args.map_cwe_requests if "map-cwe" in name else args.search_requests if "search" in name
                 else args.requests)
            t_warm = time.perf_counter()
            warm = asyncio.run(round_(url, h, make, 4, 5, args.client))  # warm-up: lazy loads happen here, not in the timing
            warm["seconds_with_lazy_loads"] = round(time.perf_counter() - t_warm, 2)
            print(name, "warm-up", json.dumps(warm), flush=True)
            result.setdefault("warmups", {})[name] = warm
            rounds = []
            for _ in range(2):
                c0 = ps.cpu_times()
                r = asyncio.run(round_(url, h, make, args.clients, n, args.client))
                c1 = ps.cpu_times()
                # server CPU per request: what the request costs, whatever else loads the machine
                r["server_cpu_ms_per_request"] = round(
                    ((c1.user + c1.system) - (c0.user + c0.system)) * 1000 / max(r["requests"], 1), 2)
                r["loadavg_1m"] = round(os.getloadavg()[0], 2)
                r["server_fds"] = ps.num_fds()
                r["server_rss_mb"] = round(ps.memory_info().rss / 2**20, 1)
                r["server_threads"] = ps.num_threads()
                rounds.append(r)
            result["endpoints"][name] = rounds
            print(name, json.dumps(rounds), flush=True)
        result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        proc.send_signal(2)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        result["stop_exit_code"] = proc.returncode
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\nstart to ready {result['start_to_ready_s']} s wall, {result['start_cpu_s']} s server CPU; "
          f"load average before {result['loadavg_before']}, after {result.get('loadavg_after')}")
    print("| endpoint | round | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | server CPU ms/req | "
          "client CPU ms/req | fds | RSS MB | load 1m |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, rounds in result.get("endpoints", {}).items():
        for i, r in enumerate(rounds, 1):
            print(f"| {name} | {i} | {r['requests']} | {r['errors']} | {r['rps']} | {r['p50_ms']} | {r['p90_ms']} | "
                  f"{r['p99_ms']} | {r['max_ms']} | {r['server_cpu_ms_per_request']} | "
                  f"{r['client_cpu_ms_per_request']} | {r['server_fds']} | {r['server_rss_mb']} | {r['loadavg_1m']} |")


if __name__ == "__main__":
    main()
