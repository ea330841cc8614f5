"""NVD API 2.0 connector: paging, 120-day windows, API key and rate limits, resume, parsing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Snapshot, registry
from secfoundry.core.download import Fetcher, FetchError, KeyRule
from secfoundry.sources.nvd import NvdSource, nvd_time, parse_nvd_cve, rate_interval, windows

UTC = timezone.utc


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def sample_cve(mirror: Path) -> dict:
    return json.loads((mirror / "nvd" / "CVE-2024-3001.nvd-api2.json").read_text())


def _items(sample: dict, n: int, start: datetime) -> list[dict]:
    out = []
    for i in range(n):
        c = json.loads(json.dumps(sample))
        c["id"] = f"CVE-2024-{10000 + i}"
        c["lastModified"] = (start + timedelta(days=i * 7)).strftime("%Y-%m-%dT%H:%M:%S.000")
        out.append({"cve": c})
    return out


def _in_window(req, item) -> bool:
    """The loopback API applies lastMod filters like NVD does (both or neither, <= 120 days)."""
    s, e = req.query.get("lastModStartDate"), req.query.get("lastModEndDate")
    if s is None and e is None:
        return True
    assert s and e, "lastModStartDate and lastModEndDate must come together"
    s_dt, e_dt = datetime.fromisoformat(s), datetime.fromisoformat(e)
    assert e_dt - s_dt <= timedelta(days=120)
    lm = datetime.fromisoformat(item["cve"]["lastModified"]).replace(tzinfo=UTC)
    return s_dt <= lm < e_dt


def test_registered():
    assert registry()["nvd"] is NvdSource


def test_mirror_response(mirror):
    src = NvdSource()
    snap = src.fetch(mirror)
    q = Quarantine()
    recs = list(src.records(snap, q))
    assert len(recs) == 1 and len(q) == 0
    r = recs[0]
    assert r.id == "CVE-2024-3001" and r.source == "nvd" and "sql injection" in r.description
    assert {m["version"] for m in r.attributes["cvss"]} == {"2.0", "3.1"}
    assert r.attributes["cvss_base_score"] == 6.3 and r.relations[0].target == "CWE-89"
    assert snap.version.startswith("2024-05-17")
    doc = next(src.documents(snap))
    assert doc.url == "https://nvd.nist.gov/vuln/detail/CVE-2024-3001" and "CVSS 3.1" in doc.text


def test_windows_and_formats():
    s, e = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 9, 1, tzinfo=UTC)
    w = windows(s, e)
    assert len(w) == 3 and w[0][0] == s and w[-1][1] == e
    assert all(b - a <= timedelta(days=120) for a, b in w)
    assert all(w[i][1] == w[i + 1][0] for i in range(len(w) - 1))
    assert windows(e, s) == []
    assert nvd_time(datetime(2024, 4, 1, 13, 0, tzinfo=UTC)) == "2024-04-01T13:00:00.000+00:00"
    assert rate_interval(False) == 6.0 and rate_interval(True) == 0.6


def test_full_sync_pages_through_total_results(http_server, home, tmp_path, sample_cve):
    items = _items(sample_cve, 5, datetime(2024, 1, 1, tzinfo=UTC))
    http_server.paged_json("rest/json/cves/2.0", items, filter_fn=_in_window)
    src = NvdSource(api=http_server.url("rest/json/cves/2.0"), page_size=2, rate_limit=0, full=True)
    with Fetcher(tmp_path, retries=0) as f:
        snap = src.fetch(None, fetcher=f)
    reqs = http_server.requests_to("rest/json/cves/2.0")
    assert [r.query["startIndex"] for r in reqs] == ["0", "2", "4"]
    assert all(r.query["resultsPerPage"] == "2" and "lastModStartDate" not in r.query for r in reqs)
    assert snap.extra["requests"] == 3 and snap.extra["total_results"] == 5
    assert len({r.id for r in src.records(snap)}) == 5


def test_incremental_windows_with_key_and_retry(http_server, home, tmp_path, sample_cve, monkeypatch):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    items = _items(sample_cve, 40, start)  # one every 7 days: 280 days of changes
    http_server.paged_json("api", items, filter_fn=_in_window)
    http_server.fail("api", [429, 503], retry_after="0")
    monkeypatch.setenv("SF_NVD_TEST_KEY", "k123")
    rules = (KeyRule("127.0.0.1", "SF_NVD_TEST_KEY", "apiKey"),)
    src = NvdSource(start, start + timedelta(days=280), api=http_server.url("api"), page_size=10, rate_limit=0)
    with Fetcher(tmp_path, retries=3, backoff=0.01, key_rules=rules, sleep=lambda s: None) as f:
        snap = src.fetch(None, fetcher=f)
        assert f.rate_limit_for("127.0.0.1") == 0
    reqs = [r for r in http_server.requests_to("api") if "startIndex" in r.query]
    assert all(r.headers.get("apikey") == "k123" for r in reqs)
    assert snap.extra["windows"] == 3 and snap.extra["total_results"] == 40
    assert {r.id for r in src.records(snap)} == {i["cve"]["id"] for i in items}
    starts = sorted({r.query["lastModStartDate"] for r in reqs})
    assert len(starts) == 3 and starts[0] == "2024-01-01T00:00:00.000+00:00"
    # The next sync starts where this one ended.
    assert NvdSource(api=src.api).plan().since == snap.extra["until"]


def test_documented_rate_limit_applied(http_server, home, tmp_path, sample_cve, monkeypatch):
    http_server.paged_json("api", _items(sample_cve, 1, datetime(2024, 1, 1, tzinfo=UTC)))
    monkeypatch.delenv("NVD_API_KEY", raising=False)
    sleeps: list[float] = []
    with Fetcher(tmp_path, retries=0, sleep=sleeps.append) as f:
        NvdSource(api=http_server.url("api"), full=True).fetch(None, fetcher=f)
        assert f.rate_limit_for("127.0.0.1") == 6.0
    monkeypatch.setenv("SF_K", "x")
    with Fetcher(tmp_path, retries=0, key_rules=(KeyRule("127.0.0.1", "SF_K", "apiKey"),)) as f:
        NvdSource(api=http_server.url("api"), full=True).fetch(None, fetcher=f)
        assert f.rate_limit_for("127.0.0.1") == 0.6


def test_interrupted_sync_resumes(http_server, home, tmp_path, sample_cve):
    items = _items(sample_cve, 6, datetime(2024, 1, 1, tzinfo=UTC))
    http_server.paged_json("api", items)
    calls = {"n": 0}
    orig = http_server.routes["/api"]

    def flaky(req):
        calls["n"] += 1
        if calls["n"] == 2:
            return 403, {}, b"forbidden"
        return orig(req)

    http_server.route("api", flaky)
    src = NvdSource(api=http_server.url("api"), page_size=2, rate_limit=0, full=True)
    with Fetcher(tmp_path, retries=0) as f:
        with pytest.raises(FetchError, match="403"):
            src.fetch(None, fetcher=f)
        snap = src.fetch(None, fetcher=f)  # resumes: page 0 is not asked again
    starts = [r.query["startIndex"] for r in http_server.requests_to("api")]
    assert starts == ["0", "2", "2", "4"]
    assert len(list(src.records(snap))) == 6


def test_malformed(tmp_path, sample_cve):
    good = {"resultsPerPage": 3, "startIndex": 0, "totalResults": 3, "vulnerabilities": [
        {"cve": sample_cve}, {"cve": {**sample_cve, "id": "CVE-XX"}},
        {"cve": {**sample_cve, "id": "CVE-2024-3002", "metrics": {"cvssMetricV31": [{"cvssData": "oops"}]}}}]}
    f1 = tmp_path / "page.json"
    f1.write_text(json.dumps(good))
    f2 = tmp_path / "trunc.json"
    f2.write_text(json.dumps(good)[:100])
    f3 = tmp_path / "other.json"
    f3.write_text("[]")
    q = Quarantine()
    recs = list(NvdSource().records(Snapshot("nvd", [f1, f2, f3]), q))
    assert [r.id for r in recs] == ["CVE-2024-3001"]
    errs = [(i["file"], str(i["entry"]), i["error"]) for i in q.items]
    assert any(e[1] == "1:CVE-XX" and "malformed CVE id" in e[2] for e in errs)
    assert any(e[1] == "2:CVE-2024-3002" and "cvssData" in e[2] for e in errs)
    assert any("trunc.json" in e[0] and "invalid JSON" in e[2] for e in errs)
    assert any("other.json" in e[0] for e in errs)


def test_rejected_and_kev_fields(sample_cve):
    rec = parse_nvd_cve({**sample_cve, "vulnStatus": "Rejected"})
    assert rec.revoked
    rec = parse_nvd_cve({**sample_cve, "cisaExploitAdd": "2024-04-01", "cisaActionDue": "2024-04-22"})
    assert rec.attributes["kev_date_added"] == "2024-04-01"
    with pytest.raises(ValueError):
        NvdSource(page_size=5000)
    with pytest.raises(ValueError):
        NvdSource(window_days=121)
