"""Service state that outlives a request: UI sessions persisted in SQLite (a restart keeps
analysts logged in; revocation and expiry still end them), the key-verification cache, and the
audit log's batching and size-based rotation."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from fastapi.testclient import TestClient

from secfoundry.serve.app import create_app
from secfoundry.serve.audit import AuditLog
from secfoundry.serve.db import ServeDB
from secfoundry.serve.keys import KeyStore
from secfoundry.serve.sessions import COOKIE, Sessions


def _login(c: TestClient, key: str) -> str:
    r = c.post("/ui/login", data={"key": key, "next": "/ui/kb"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/kb"
    return c.cookies[COOKIE]


def test_ui_session_survives_a_restart_and_ends_on_revoke(make_config) -> None:
    cfg = make_config()
    app = create_app(cfg)
    with TestClient(app) as c:
        _, key = app.state.service.keys.add("analyst")
        token = _login(c, key)
        assert c.get("/ui/kb", follow_redirects=False).status_code == 200
    raw = (cfg.home / "serve.sqlite").read_bytes()
    assert token.encode() not in raw  # only the session id's hash is stored
    app2 = create_app(cfg)  # "restart": a new process state over the same home
    with TestClient(app2) as c2:
        c2.cookies.clear()
        c2.cookies.set(COOKIE, token)
        page = c2.get("/ui/kb", follow_redirects=False)
        assert page.status_code == 200 and "analyst" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        # the CSRF token survives too: a form rendered before the restart still posts
        assert c2.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
        c2.cookies.clear()
        c2.cookies.set(COOKIE, token)
        assert c2.get("/ui/kb", follow_redirects=False).status_code == 303  # logged out for good
        _, key2 = app2.state.service.keys.add("second")
        c2.cookies.clear()
        token2 = _login(c2, key2)
        app2.state.service.keys.revoke("second")
        c2.cookies.clear()
        c2.cookies.set(COOKIE, token2)
        assert c2.get("/ui/kb", follow_redirects=False).status_code == 303  # revoked key -> session gone
        rows = app2.state.service.db.query("SELECT count(*) FROM ui_sessions")
        assert rows[0][0] == 0


def test_expired_sessions_are_refused_and_purged(tmp_path: Path) -> None:
    db = ServeDB(tmp_path / "s.sqlite")
    keys = KeyStore(db)
    info, _ = keys.add("a")
    s = Sessions(db, ttl=0.05)
    token, sess = s.create(info.id, info.name)
    assert s.get(token) is not None and s.get(token).csrf == sess.csrf
    time.sleep(0.1)
    assert s.get(token) is None
    s.create(info.id, info.name)
    time.sleep(0.1)
    Sessions(db)  # a start purges expired rows
    assert db.query("SELECT count(*) FROM ui_sessions")[0][0] == 0
    assert s.get(None) is None and s.get("x" * 500) is None


def test_key_verdicts_are_cached_and_revocation_is_seen(tmp_path: Path) -> None:
    db = ServeDB(tmp_path / "k.sqlite")
    keys = KeyStore(db, cache_s=0.2)
    info, key = keys.add("soar")
    assert keys.verify(key).key.id == info.id
    keys.revoke("soar")  # through this process: at once
    assert keys.verify(key).revoked
    info2, key2 = keys.add("siem")
    assert keys.verify(key2).key is not None
    other = KeyStore(ServeDB(tmp_path / "k.sqlite"))  # another process (the CLI) revokes
    other.revoke("siem")
    assert keys.verify(key2).key is not None  # still cached ...
    time.sleep(0.25)
    v = keys.verify(key2)  # ... for at most cache_s
    assert v.key is None and v.revoked
    assert keys.verify("sf_wrong").key is None and keys.verify("nope").key is None


def test_audit_log_batches_and_rotates_by_size(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=4000, backups=2, flush_s=0.05)
    for i in range(200):
        log.write(who="k(sf_x)", method="GET", path=f"/kb/T{i:04d}", status=200, bytes_out=10, ms=1.0)
    log.flush()
    files = log.files()
    assert [f.name for f in files] == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]  # the oldest dropped
    assert all(f.stat().st_size <= 4000 for f in files)
    lines = [json.loads(x) for f in reversed(files) for x in f.read_text().splitlines()]  # every line whole
    paths = [x["path"] for x in lines]
    assert paths == sorted(paths) and paths[-1] == "/kb/T0199"  # in order, newest kept
    log.write(who="k", method="GET", path="/late", status=200, bytes_out=0, ms=0.1)
    time.sleep(0.3)  # the writer thread flushes by itself
    assert "/late" in (tmp_path / "audit.jsonl").read_text()
    log.write(who="k", method="GET", path="/at-close", status=200, bytes_out=0, ms=0.1)
    log.close()
    assert "/at-close" in (tmp_path / "audit.jsonl").read_text()
    log.write(who="k", method="GET", path="/after", status=200, bytes_out=0, ms=0.1)  # after close: no error


def test_audit_back_pressure_never_drops(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl", flush_s=60, max_pending=10)
    for i in range(25):
        log.write(who="k", method="GET", path=f"/{i}", status=200, bytes_out=0, ms=0.1)
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 20  # two full batches written by writers
    log.close()
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 25
