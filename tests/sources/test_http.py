"""Fetcher against the loopback server: retries, Retry-After, 304, pinning, keys, rate limits."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from secfoundry.core.download import (
    DEFAULT_USER_AGENT,
    ChecksumError,
    Fetcher,
    FetchError,
    KeyRule,
    _parse_retry_after,
    read_meta,
)


def test_get_json_and_user_agent(http_server, fast_fetcher):
    http_server.add_file("a.json", json.dumps({"x": 1}))
    assert fast_fetcher.get_json(http_server.url("a.json")) == {"x": 1}
    assert http_server.requests[-1].headers["user-agent"] == DEFAULT_USER_AGENT
    assert DEFAULT_USER_AGENT.startswith("secfoundry/")


def test_retries_429_then_503_then_success_honours_retry_after(http_server, fast_fetcher):
    http_server.add_file("a.txt", "ok")
    http_server.fail("a.txt", [429], retry_after="7")
    http_server.fail("a.txt", [503])
    resp = fast_fetcher.get(http_server.url("a.txt"))
    assert resp.text == "ok"
    assert len(http_server.requests_to("a.txt")) == 3
    assert fast_fetcher.sleeps[0] == 7.0  # Retry-After honoured
    assert 0 < fast_fetcher.sleeps[1] < 1  # exponential back-off with jitter (backoff 0.01 * 2)


def test_gives_up_after_last_try_with_clear_error(http_server, fast_fetcher):
    http_server.fail("down", [500] * 10)
    with pytest.raises(FetchError) as ei:
        fast_fetcher.get(http_server.url("down"))
    assert "after 4 attempt(s)" in str(ei.value) and "HTTP 500" in str(ei.value)
    assert ei.value.status == 500 and len(http_server.requests_to("down")) == 4


def test_non_retryable_status_fails_at_once(http_server, fast_fetcher):
    with pytest.raises(FetchError) as ei:
        fast_fetcher.get(http_server.url("missing"))
    assert ei.value.status == 404 and ei.value.attempts == 1
    assert "404" in str(ei.value) and "missing" in str(ei.value)


def test_transport_error_is_retried_then_reported(tmp_path):
    sleeps: list[float] = []
    f = Fetcher(tmp_path, retries=2, backoff=0.01, sleep=sleeps.append, timeout=2)
    with pytest.raises(FetchError, match="after 3 attempt"):
        f.get("http://127.0.0.1:9/nothing-listens-here")
    assert len(sleeps) == 2


def test_download_conditional_304_keeps_file(http_server, fast_fetcher, tmp_path):
    http_server.add_file("data/file.bin", b"v1" * 1000)
    dest = tmp_path / "cache" / "file.bin"
    assert fast_fetcher.download(http_server.url("data/file.bin"), dest) == dest
    assert dest.read_bytes() == b"v1" * 1000
    meta = read_meta(dest)
    assert meta["etag"] and meta["sha256"] == hashlib.sha256(b"v1" * 1000).hexdigest()
    fast_fetcher.download(http_server.url("data/file.bin"), dest)
    second = http_server.requests_to("data/file.bin")[-1]
    assert second.headers["if-none-match"] == meta["etag"]
    assert second.headers["if-modified-since"] == http_server.last_modified
    assert dest.read_bytes() == b"v1" * 1000
    # Upstream changes: the new content replaces the old.
    http_server.add_file("data/file.bin", b"v2")
    fast_fetcher.download(http_server.url("data/file.bin"), dest)
    assert dest.read_bytes() == b"v2"
    assert not list(dest.parent.glob(".*.part"))


def test_download_last_modified_only(http_server, fast_fetcher, tmp_path):
    http_server.etags = False
    http_server.add_file("f", b"abc")
    dest = tmp_path / "f"
    fast_fetcher.download(http_server.url("f"), dest)
    fast_fetcher.download(http_server.url("f"), dest)
    reqs = http_server.requests_to("f")
    assert "if-none-match" not in reqs[1].headers and reqs[1].headers["if-modified-since"]
    assert dest.read_bytes() == b"abc"


def test_download_sha256_pin(http_server, fast_fetcher, tmp_path):
    data = b"pinned content"
    http_server.add_file("p", data)
    good = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "p"
    fast_fetcher.download(http_server.url("p"), dest, sha256=good)
    n = len(http_server.requests_to("p"))
    fast_fetcher.download(http_server.url("p"), dest, sha256=good)  # verified cache: no request
    assert len(http_server.requests_to("p")) == n
    other = tmp_path / "q"
    with pytest.raises(ChecksumError, match="does not match"):
        fast_fetcher.download(http_server.url("p"), other, sha256="0" * 64)
    assert not other.exists()


def test_download_retries_server_errors(http_server, fast_fetcher, tmp_path):
    http_server.add_file("r", b"xyz")
    http_server.fail("r", [502, 429], retry_after="0")
    assert fast_fetcher.download(http_server.url("r"), tmp_path / "r").read_bytes() == b"xyz"


def test_api_key_only_to_its_host(http_server, tmp_path, monkeypatch):
    monkeypatch.setenv("SF_TEST_KEY", "s3cret")
    rules = (KeyRule("127.0.0.1", "SF_TEST_KEY", "apiKey"), KeyRule("example.org", "SF_TEST_KEY", "X-Other"))
    with Fetcher(tmp_path, key_rules=rules) as f:
        http_server.add_file("k", b"1")
        f.get(http_server.url("k"))
        assert f.api_key(http_server.url("k")) == "s3cret"
        assert f.api_key("https://elsewhere.net/") is None
    h = http_server.requests[-1].headers
    assert h["apikey"] == "s3cret" and "x-other" not in h


def test_default_key_rules_nvd_and_github(monkeypatch, tmp_path):
    monkeypatch.setenv("NVD_API_KEY", "nvdkey")
    monkeypatch.setenv("GITHUB_TOKEN", "ghtok")
    f = Fetcher(tmp_path)
    assert f._auth_headers("https://services.nvd.nist.gov/rest/json/cves/2.0") == {"apiKey": "nvdkey"}
    assert f._auth_headers("https://api.github.com/advisories") == {"Authorization": "Bearer ghtok"}
    assert f._auth_headers("https://example.com/") == {}
    f.close()


def test_rate_limit_spaces_requests_per_host(http_server, tmp_path):
    http_server.add_file("x", b"1")
    with Fetcher(tmp_path, rate_limit={"127.0.0.1": 0.2}) as f:
        t0 = time.monotonic()
        for _ in range(3):
            f.get(http_server.url("x"))
        assert time.monotonic() - t0 >= 0.38
        assert f.rate_limit_for("other.host") is None


def test_parse_retry_after():
    assert _parse_retry_after("12") == 12.0
    assert _parse_retry_after(None) is None
    assert _parse_retry_after("garbage") is None
    assert _parse_retry_after("Wed, 01 Jan 2020 00:00:00 GMT") == 0.0


def test_download_interrupted_transfer_is_retried(http_server, fast_fetcher, tmp_path):
    calls = {"n": 0}

    def cut(req):
        calls["n"] += 1
        if calls["n"] == 1:  # promise 1000 bytes, send 10, hang up
            return 200, {"Content-Length": "1000"}, b"0123456789"
        return 200, {}, b"full body"

    http_server.route("cut", cut)
    dest = fast_fetcher.download(http_server.url("cut"), tmp_path / "cut.bin")
    assert dest.read_bytes() == b"full body" and calls["n"] == 2
    assert not list(tmp_path.glob(".cut.bin*.part"))
