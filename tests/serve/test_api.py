"""The HTTP API as a client sees it: auth, limits, validation, traversal, KB parity, jobs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from typer.testing import CliRunner

from secfoundry.cli import app as cli_app
from secfoundry.serve.app import add_job_kind, create_app
from secfoundry.serve.jobs import JobKind


def test_healthz_and_readyz_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz").json()
    assert r["ready"] is True and r["kb"]["exists"] is True
    assert "kb-search-batch" in r["jobs"]["kinds"]
    assert r["loaded"] == {}  # nothing is loaded before the first request needs it


def test_auth_missing_wrong_revoked(client: TestClient, key: str) -> None:
    r = client.get("/kb/T1003")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.get("/kb/T1003", headers={"Authorization": "Bearer sf_wrong"}).status_code == 401
    assert client.get("/kb/T1003", headers={"Authorization": f"Basic {key}"}).status_code == 401
    ok = {"Authorization": f"Bearer {key}"}
    assert client.get("/kb/T1003", headers=ok).status_code == 200
    client.app.state.service.keys.revoke("tester")
    r = client.get("/kb/T1003", headers=ok)
    assert r.status_code == 403 and "revoked" in r.json()["detail"]


def test_keys_are_stored_hashed_and_audit_has_no_secret(client: TestClient, key: str, auth: dict) -> None:
    client.get("/kb/T1003", headers=auth)
    client.get("/kb/search", params={"q": "lsass"}, headers=auth)
    svc = client.app.state.service
    raw = svc.db.path.read_bytes() + (svc.db.path.parent / "serve.sqlite-wal").read_bytes()
    assert key.encode() not in raw
    svc.audit.flush()  # lines are written off the request path, in batches
    log = (svc.home / "audit.jsonl").read_text()
    assert key not in log and "lsass" not in log  # no query strings, no keys
    lines = [json.loads(x) for x in log.splitlines()]
    hit = [x for x in lines if x["path"] == "/kb/T1003"][-1]
    assert hit["who"].startswith("tester(sf_") and hit["status"] == 200 and hit["bytes"] > 100
    assert {"ts", "method", "ms", "client"} <= set(hit)


def test_rate_limit_429_with_retry_after(make_config) -> None:
    app = create_app(make_config(rate_per_minute=60, rate_burst=3))
    with TestClient(app) as c:
        _, k = app.state.service.keys.add("burst")
        h = {"Authorization": f"Bearer {k}"}
        codes = [c.get("/kb/T1003", headers=h).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        r = c.get("/kb/T1003", headers=h)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        _, k2 = app.state.service.keys.add("other")  # limits are per key
        assert c.get("/kb/T1003", headers={"Authorization": f"Bearer {k2}"}).status_code == 200


def test_body_limit_413(make_config) -> None:
    app = create_app(make_config(max_body_bytes=2048))
    with TestClient(app) as c:
        _, k = app.state.service.keys.add("big")
        h = {"Authorization": f"Bearer {k}"}
        r = c.post("/jobs/kb-search-batch", headers=h, json={"queries": ["x" * 5000]})
        assert r.status_code == 413
        # no Content-Length (chunked): counted while reading
        r = c.post("/jobs/kb-search-batch", headers={**h, "Content-Type": "application/json"},
                   content=iter([b'{"queries": ["', b"y" * 4096, b'"]}']))
        assert r.status_code == 413
        assert c.post("/jobs/kb-search-batch", headers=h, json={"queries": ["lsass"]}).status_code == 202


def test_malformed_json_422_names_the_field(client: TestClient, auth: dict) -> None:
    r = client.post("/jobs/kb-search-batch", headers=auth, json={"queries": ["a"], "k": "many"})
    assert r.status_code == 422
    assert any(e["loc"][-1] == "k" for e in r.json()["detail"])
    r = client.post("/jobs/kb-search-batch", headers=auth, json={"k": 3})
    assert r.status_code == 422 and any(e["loc"][-1] == "queries" for e in r.json()["detail"])
    r = client.post("/jobs/kb-search-batch", headers={**auth, "Content-Type": "application/json"},
                    content=b'{"queries": ["a",')
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2fserve.sqlite",
    "/static/swagger/../../config.py", "/kb/..%2F..%2F..%2Fetc%2Fpasswd", "/kb/%2e%2e%2fkb.sqlite",
    "/ui/kb/..%2F..%2Fetc%2Fpasswd", "/jobs/..%2F..%2Fserve.sqlite", "/static//etc/passwd",
])
def test_traversal_refused(client: TestClient, auth: dict, path: str) -> None:
    r = client.get(path, headers=auth)
    assert r.status_code in (404, 422, 303), (path, r.status_code)
    assert b"root:" not in r.content and b"SQLite format" not in r.content and b"ServeConfig" not in r.content


def _request_fields(spec: dict) -> set[str]:
    """Every parameter name and request-body field name (recursively) in the OpenAPI document."""
    comps = spec.get("components", {}).get("schemas", {})
    names: set[str] = set()
    seen: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in seen:
                    seen.add(name)
                    walk(comps.get(name, {}))
            for k, v in node.get("properties", {}).items():
                names.add(k)
                walk(v)
            for k in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
                if k in node:
                    walk(node[k])
        elif isinstance(node, list):
            for x in node:
                walk(x)

    for ops in spec["paths"].values():
        for op in ops.values():
            for p in op.get("parameters", []):
                names.add(p["name"])
            walk(op.get("requestBody", {}).get("content", {}))
            for media in op.get("requestBody", {}).get("content", {}).values():
                walk(media.get("schema", {}))
    return names


def test_no_endpoint_takes_a_server_path(client: TestClient) -> None:
    """No parameter or request-body field of any route names a server file or directory."""
    names = {n.lower() for n in _request_fields(client.get("/openapi.json").json())}
    assert "files" in names or "text" in names or "queries" in names  # the walk did see bodies
    for bad in ("path", "paths", "file_path", "filepath", "dir", "directory", "mirror", "db", "out", "kb"):
        assert bad not in names, bad


def test_kb_show_parity_with_cli(client: TestClient, auth: dict, tiny_kb: Path) -> None:
    runner = CliRunner()
    for ident in ("T1003.001", "cwe-79", "G0007", "T1086", "CVE-2024-3400"):
        cli = runner.invoke(cli_app, ["kb", "show", ident, "--db", str(tiny_kb), "--json"])
        assert cli.exit_code == 0, cli.output
        r = client.get(f"/kb/{ident}", headers=auth)
        assert r.status_code == 200 and r.json() == json.loads(cli.output), ident
    cli = runner.invoke(cli_app, ["kb", "show", "T9999", "--db", str(tiny_kb), "--json"])
    r = client.get("/kb/T9999", headers=auth)
    assert r.status_code == 404 and r.json() == json.loads(cli.output)


def test_kb_search_parity_with_cli(client: TestClient, auth: dict, tiny_kb: Path) -> None:
    cli = CliRunner().invoke(cli_app, ["kb", "search", "dump lsass memory", "--db", str(tiny_kb), "--json",
                                       "-k", "5"])
    r = client.get("/kb/search", params={"q": "dump lsass memory", "k": 5}, headers=auth)
    assert r.status_code == 200
    got, want = r.json(), json.loads(cli.output)
    assert [h["id"] for h in got] == [h["id"] for h in want] and got[0]["id"].startswith("T1003")
    assert client.get("/kb/search", params={"q": "x", "k": 1000}, headers=auth).status_code == 422
    assert "kb" in client.get("/readyz").json()["loaded"]


def _wait(c: TestClient, h: dict, jid: str, want: str, timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = c.get(f"/jobs/{jid}", headers=h).json()
        if j["status"] == want:
            return j
        time.sleep(0.05)
    raise AssertionError(f"job {jid} never reached {want}: {j}")


def test_job_lifecycle_and_ownership(client: TestClient, auth: dict) -> None:
    r = client.post("/jobs/kb-search-batch", headers=auth, json={"queries": ["lsass", "cross-site scripting"], "k": 3})
    assert r.status_code == 202 and r.headers["location"] == f"/jobs/{r.json()['id']}"
    jid = r.json()["id"]
    j = _wait(client, auth, jid, "done")
    assert j["progress"] == 1 and j["has_result"]
    res = client.get(f"/jobs/{jid}/result", headers=auth).json()
    assert [x["query"] for x in res["results"]] == ["lsass", "cross-site scripting"]
    assert "CWE-79" in [h["id"] for h in res["results"][1]["hits"]]
    assert [x["id"] for x in client.get("/jobs", headers=auth).json()] == [jid]
    _, other = client.app.state.service.keys.add("someone-else")
    oh = {"Authorization": f"Bearer {other}"}
    assert client.get(f"/jobs/{jid}", headers=oh).status_code == 404  # private to the submitting key name
    assert client.get("/jobs", headers=oh).json() == []
    assert client.get("/jobs/job_../result", headers=auth).status_code in (404, 422)


class Sleepy(BaseModel):
    n: int = 1


def test_jobs_survive_restart_interrupted_then_retried(make_config) -> None:
    """A job running when the server goes away is 'interrupted' after restart and can be retried;
    a queued one runs again by itself."""
    gate = threading.Event()

    def blocking(ctx, req: Sleepy, progress) -> dict:
        progress(0.5, "waiting")
        gate.wait(10)
        return {"n": req.n}

    cfg = make_config(job_workers=1)
    app1 = create_app(cfg)
    add_job_kind(app1, JobKind("sleepy", Sleepy, blocking))
    with TestClient(app1) as c:
        _, k = app1.state.service.keys.add("jobs")
        h = {"Authorization": f"Bearer {k}"}
        running = c.post("/jobs/sleepy", headers=h, json={"n": 1}).json()["id"]
        _wait(c, h, running, "running")
        queued = c.post("/jobs/sleepy", headers=h, json={"n": 2}).json()["id"]
        assert c.get(f"/jobs/{queued}", headers=h).json()["status"] == "queued"
        # the process "dies": the worker never records an end (simulated by freezing the db writes)
        app1.state.service.jobs._execute = lambda ctx, jid: None
    # (TestClient exit closed the db while the first job still waits on the gate)
    app2 = create_app(cfg)
    add_job_kind(app2, JobKind("sleepy", Sleepy, lambda ctx, req, progress: {"n": req.n}))
    with TestClient(app2) as c:
        assert c.get("/readyz").json()["jobs"]["recovered_at_start"] == {"interrupted": 1, "requeued": 1}
        j = c.get(f"/jobs/{running}", headers=h).json()
        assert j["status"] == "interrupted" and "restart" in j["message"]
        assert c.get(f"/jobs/{running}/result", headers=h).status_code == 409
        _wait(c, h, queued, "done")
        assert c.get(f"/jobs/{queued}/result", headers=h).json() == {"n": 2}
        r = c.post(f"/jobs/{running}/retry", headers=h)
        assert r.status_code == 200
        j = _wait(c, h, running, "done")
        assert j["attempts"] == 2 and c.get(f"/jobs/{running}/result", headers=h).json() == {"n": 1}
        assert c.post(f"/jobs/{running}/retry", headers=h).status_code == 409  # done jobs are not retried
    gate.set()


def test_cors_off_by_default_and_security_headers(client: TestClient, auth: dict) -> None:
    r = client.get("/kb/T1003", headers={**auth, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    assert r.headers["x-content-type-options"] == "nosniff" and "default-src 'self'" in r.headers[
        "content-security-policy"]
    pre = client.options("/kb/T1003", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers


def test_docs_served_locally(client: TestClient) -> None:
    html = client.get("/docs").text
    assert "cdn" not in html.lower() and "/static/swagger/swagger-ui-bundle.js" in html
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["paths"]["/kb/{id}"]["get"]["security"] == [{"HTTPBearer": []}]


def test_kb_show_cache_follows_a_sync(make_config, tiny_kb: Path, tmp_path: Path) -> None:
    """Rendered entries are cached, but a sync (another connection committing) empties the cache."""
    import shutil

    from secfoundry.kb import KnowledgeBase
    from secfoundry.kb.dense import HashEmbedder
    from tests.kb._kbsynth import make_source, rec, write_source

    kb_copy = tmp_path / "kbcopy"
    shutil.copytree(tiny_kb, kb_copy)
    app = create_app(make_config(kb_path=kb_copy))
    with TestClient(app) as c:
        _, k = app.state.service.keys.add("cache")
        h = {"Authorization": f"Bearer {k}"}
        assert c.get("/kb/T1548", headers=h).status_code == 404
        assert c.get("/kb/T1548", headers=h).status_code == 404  # cached answer
        mirror = tmp_path / "m"
        write_source(mirror, "delta", [rec("T1548", "technique", "Abuse Elevation Control Mechanism", "x")], "1")
        kb = KnowledgeBase.open(kb_copy, embedder=HashEmbedder())
        kb.sync(mirror=mirror, connectors={"delta": make_source("delta")}, sources=["delta"], dense=False)
        kb.close()
        time.sleep(0.6)  # the cache looks at the KB's data_version at most every 0.5 s
        r = c.get("/kb/T1548", headers=h)
        assert r.status_code == 200 and r.json()["name"] == "Abuse Elevation Control Mechanism"


def test_cached_lookup_fast_path_matches_the_route(client: TestClient, key: str, auth: dict) -> None:
    """A rendered entry is answered before routing: same status, body and headers as the route,
    audited, rate-limited once; every other case is still the route's."""
    svc = client.app.state.service
    fast = next(m for m in _middlewares(client.app) if type(m).__name__ == "FastLookup")
    first = client.get("/kb/T1003", headers=auth)  # the route renders it and fills the cache
    missing = client.get("/kb/T9999", headers=auth)
    n = fast.served
    again = client.get("/kb/T1003", headers=auth)
    missing2 = client.get("/kb/T9999", headers=auth)
    assert fast.served == n + 2
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert (missing2.status_code, missing2.json()) == (404, missing.json())
    for h in ("content-type", "content-length", "x-content-type-options", "content-security-policy", "cache-control"):
        assert again.headers[h] == first.headers[h], h
    # not the fast path's business: answered by the route as before
    assert client.get("/kb/T1003").status_code == 401
    assert client.get("/kb/T1003", headers={"Authorization": "Bearer sf_wrong"}).status_code == 401
    assert client.get("/kb/T1003", headers={"Authorization": f"bearer {key}"}).status_code == 200
    assert client.get("/kb/search", params={"q": "lsass"}, headers=auth).status_code == 200
    svc.audit.flush()
    lines = [json.loads(x) for x in (svc.home / "audit.jsonl").read_text().splitlines()]
    fast_lines = [x for x in lines if x["path"] == "/kb/T1003" and x["status"] == 200]
    assert len(fast_lines) == 3 and all(x["who"].startswith("tester(sf_") for x in fast_lines)
    svc.keys.revoke("tester")
    assert client.get("/kb/T1003", headers=auth).status_code == 403  # revoked: the route's answer


def test_fast_path_counts_each_request_once_against_the_rate(make_config) -> None:
    app = create_app(make_config(rate_per_minute=60, rate_burst=4))
    with TestClient(app) as c:
        _, k = app.state.service.keys.add("burst")
        h = {"Authorization": f"Bearer {k}"}
        codes = [c.get("/kb/T1003", headers=h).status_code for _ in range(6)]  # 1 route + fast hits
        assert codes == [200, 200, 200, 200, 429, 429]
        assert int(c.get("/kb/T1003", headers=h).headers["retry-after"]) >= 1


def _middlewares(app):
    """The instantiated ASGI middleware chain of a started app."""
    m = app.middleware_stack
    while m is not None:
        yield m
        m = getattr(m, "app", None)


def test_kb_first_lookup_served_from_rendered_entries(client: TestClient, auth: dict, tiny_kb: Path,
                                                      monkeypatch) -> None:
    """``kb sync`` materialised every entry: a first look-up of a canonical id builds nothing."""
    from secfoundry.kb.knowledge import KnowledgeBase

    expected = CliRunner().invoke(cli_app, ["kb", "show", "T1003", "--db", str(tiny_kb), "--json"])

    def no_build(self, id):  # noqa: ANN001
        raise AssertionError(f"built {id} instead of reading the rendered entry")

    monkeypatch.setattr(KnowledgeBase, "show", no_build)
    r = client.get("/kb/T1003", headers=auth)
    assert r.status_code == 200 and r.json() == json.loads(expected.output)
