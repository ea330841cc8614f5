"""OSV connector: PyPA OSV YAML, RustSec Markdown + TOML, GHSA JSON; malformed input; live paths."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Snapshot, registry
from secfoundry.core.download import Fetcher, KeyRule
from secfoundry.sources.osv import (
    OSVSource,
    advisory_from_json,
    fetch_github_advisories,
    osv_vuln,
    rustsec_record,
)
from secfoundry.core.errors import InputError

from .helpers import make_tgz, parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(OSVSource(), mirror)


def _count_members(path: Path, pattern: str) -> int:
    with tarfile.open(path) as tar:
        return sum(1 for m in tar.getmembers() if m.isfile() and re.search(pattern, m.name))


def test_registered():
    assert registry()["osv"] is OSVSource


def test_counts_match_the_files(parsed, mirror):
    src, snap, q, recs = parsed
    adv = mirror / "advisories"
    n_pypa = _count_members(adv / "pypa-advisory-database-osv-yaml.tar.gz", r"vulns/.+/PYSEC-.+\.yaml$")
    n_rust = _count_members(adv / "rustsec-advisory-db-md.tar.gz", r"crates/.+/RUSTSEC-.+\.md$")
    assert (n_pypa, n_rust) == (2661, 1205)
    feeds = [r.attributes["feed"] for r in recs.values()]
    assert feeds.count("pypa") == n_pypa and feeds.count("rustsec") == n_rust and feeds.count("github") == 1
    assert len(q) == 0
    assert snap.version == "pypa 2024-10-10, rustsec 2026-08-21"


def test_pypa_record(parsed):
    r = parsed[3]["PYSEC-2020-342"]
    assert r.type == "advisory" and r.license == "CC-BY-4.0" and r.aliases == ["CVE-2020-13921"]
    assert ("alias-of", "CVE-2020-13921") in {(x.type, x.target) for x in r.relations}
    aff = r.attributes["affected"][0]
    assert aff["ecosystem"] == "PyPI" and aff["name"] == "apache-skywalking" and aff["versions"] == 10
    assert r.attributes["severity"][0]["score"].startswith("CVSS:3.1/AV:N")
    assert "SQL injection" in r.description


def test_rustsec_record(parsed):
    r = parsed[3]["RUSTSEC-2026-0074"]
    assert r.name == "Incorrect Output of Incremental Portable SHAKE API"
    assert r.license == "CC0-1.0" and r.aliases == ["GHSA-q29p-9pfr-j652"]
    assert r.url == "https://rustsec.org/advisories/RUSTSEC-2026-0074.html"
    a = r.attributes
    assert a["affected"][0]["name"] == "libcrux-sha3" and "patched >= 0.0.8 " in a["affected"][0]["ranges"][0]["events"]
    assert "libcrux_sha3::portable::incremental::Shake128Xof::squeeze" in a["functions"]
    assert not r.description.startswith("#")
    assert parsed[3]["RUSTSEC-2022-0057"].attributes["informational"] == "unmaintained"


def test_ghsa_record(parsed):
    r = parsed[3]["GHSA-5667-3wch-7q7w"]
    assert r.name == "Eclipse Vert.x memory leak" and r.aliases == ["CVE-2024-1023"]
    assert r.attributes["cwes"] == ["CWE-119", "CWE-200"] and r.attributes["github_severity"] == "MODERATE"
    assert {("related-weakness", "CWE-119"), ("related-weakness", "CWE-200")} <= {(x.type, x.target) for x in r.relations}
    assert r.url == "https://github.com/advisories/GHSA-5667-3wch-7q7w"


def test_documents_have_provenance(parsed):
    src, snap, _, _ = parsed
    snap1 = Snapshot("osv", [f for f in snap.files if f.suffix == ".json"], version=snap.version,
                     extra=snap.extra)
    doc = next(iter(src.documents(snap1)))
    assert doc.id == "osv:GHSA-5667-3wch-7q7w" and doc.license == "CC-BY-4.0" and doc.url
    assert doc.text.startswith("# GHSA-5667-3wch-7q7w: Eclipse Vert.x memory leak")
    assert "## Affected packages" in doc.text and "Maven `io.vertx:vertx-core`" in doc.text


def test_github_rest_format():
    data = {"ghsa_id": "GHSA-abcd-2345-6789", "cve_id": "CVE-2024-0001", "summary": "Bad thing",
            "description": "Details.", "severity": "high", "html_url": "https://github.com/advisories/GHSA-abcd-2345-6789",
            "identifiers": [{"type": "GHSA", "value": "GHSA-abcd-2345-6789"}, {"type": "CVE", "value": "CVE-2024-0001"}],
            "cwes": [{"cwe_id": "CWE-79", "name": "XSS"}],
            "vulnerabilities": [{"package": {"ecosystem": "npm", "name": "left-pad"},
                                 "vulnerable_version_range": "< 1.2.3", "first_patched_version": "1.2.3"}],
            "cvss_severities": {"cvss_v3": {"vector_string": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"}},
            "published_at": "2024-01-01T00:00:00Z", "updated_at": "2024-02-01T00:00:00Z", "withdrawn_at": None}
    r = advisory_from_json(data, file="x.json", entry=0, version="github")
    assert r.id == "GHSA-abcd-2345-6789" and r.aliases == ["CVE-2024-0001"] and not r.deprecated
    assert r.attributes["affected"][0]["ranges"][0]["events"] == ["range < 1.2.3", "fixed 1.2.3"]
    assert r.attributes["github_severity"] == "HIGH" and r.attributes["cwes"] == ["CWE-79"]


GOOD_YAML = b"id: PYSEC-2099-1\naliases: [CVE-2099-0001]\ndetails: fine\naffected: []\n"
GOOD_RUST = (b'```toml\n[advisory]\nid = "RUSTSEC-2099-0001"\npackage = "x"\ndate = "2099-01-01"\n'
             b'[versions]\npatched = []\n```\n\n# Title\n\nBody.\n')


def test_malformed_members_are_quarantined_and_the_rest_goes_on(tmp_path):
    tgz = make_tgz(tmp_path / "pypa.tar.gz", {
        "db/vulns/a/PYSEC-2099-1.yaml": GOOD_YAML,
        "db/vulns/a/PYSEC-2099-2.yaml": b"id: PYSEC-2099-2\ndetails: [unclosed\n",   # broken YAML
        "db/vulns/a/PYSEC-2099-3.yaml": "id: PYSEC-2099-3\ndetails: caf\xe9\n".encode("latin-1"),  # not UTF-8
        "db/vulns/a/PYSEC-2099-4.yaml": b"- just\n- a list\n",                      # not a mapping
        "db/vulns/a/PYSEC-2099-5.yaml": b"details: no id\n",                        # no id
    })
    rust = make_tgz(tmp_path / "rustsec-advisory-db.tar.gz", {
        "db/crates/x/RUSTSEC-2099-0001.md": GOOD_RUST,
        "db/crates/x/RUSTSEC-2099-0002.md": b'```toml\n[advisory\nid = "RUSTSEC-2099-0002"\n```\n# T\n',  # bad TOML
        "db/crates/x/RUSTSEC-2099-0003.md": b"# No front matter\n",
        "db/crates/x/RUSTSEC-2099-0004.md": b'```toml\n[versions]\npatched = []\n```\n# T\n',  # no [advisory]
    })
    q = Quarantine()
    recs = list(OSVSource().records(Snapshot("osv", [tgz, rust]), q))
    assert sorted(r.id for r in recs) == ["PYSEC-2099-1", "RUSTSEC-2099-0001"]
    by_entry = {i["entry"]: i["error"] for i in q.items}
    assert set(by_entry) == {f"db/vulns/a/PYSEC-2099-{n}.yaml" for n in (2, 3, 4, 5)} | {
        f"db/crates/x/RUSTSEC-2099-000{n}.md" for n in (2, 3, 4)}
    assert "invalid YAML at line 3" in by_entry["db/vulns/a/PYSEC-2099-2.yaml"]
    assert "not valid UTF-8" in by_entry["db/vulns/a/PYSEC-2099-3.yaml"]
    assert "invalid TOML front-matter" in by_entry["db/crates/x/RUSTSEC-2099-0002.md"]
    assert "no ```toml front-matter" in by_entry["db/crates/x/RUSTSEC-2099-0003.md"]
    assert all(str(tgz) in e or str(rust) in e for e in by_entry.values())  # errors name the archive


def test_truncated_archive_keeps_what_was_read(tmp_path):
    members = {f"db/vulns/p{i}/PYSEC-2099-{i}.yaml": GOOD_YAML.replace(b"2099-1", f"2099-{i}".encode())
               + b"details: " + bytes(range(65, 91)) * 400 + b"\n" for i in range(1, 40)}
    tgz = make_tgz(tmp_path / "pypa.tar.gz", members)
    data = tgz.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    q = Quarantine()
    recs = list(OSVSource().records(Snapshot("osv", [cut]), q))
    assert 0 < len(recs) < 39
    assert len(q) == 1 and "damaged archive" in q.items[0]["error"] and str(cut) in q.items[0]["error"]
    assert q.items[0]["entry"] == f"db/vulns/p{len(recs)}/PYSEC-2099-{len(recs)}.yaml"  # last good member


def test_rustsec_record_errors_name_entry():
    with pytest.raises(InputError, match=r"file f.md, row crates/x/y.md, field 'advisory.id': malformed advisory id"):
        rustsec_record('```toml\n[advisory]\nid = "NOPE"\n```\n', file="f.md", entry="crates/x/y.md", version="")


def test_broken_ghsa_json_is_quarantined(tmp_path):
    bad = tmp_path / "GHSA-bad.json"
    bad.write_text('{"id": "GHSA-xxxx", ', encoding="utf-8")
    q = Quarantine()
    assert list(OSVSource().records(Snapshot("osv", [bad]), q)) == []
    assert "invalid JSON" in q.items[0]["error"] and str(bad) in q.items[0]["error"]


# -- live paths against the loopback server --------------------------------------------------


def test_live_tarballs_conditional_and_retry(http_server, fast_fetcher, mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)  # GitHub paging is tested on its own below
    adv = mirror / "advisories"
    http_server.add_file("pypa/main.tar.gz", (adv / "pypa-advisory-database-osv-yaml.tar.gz").read_bytes())
    http_server.add_file("rustsec/main.tar.gz", (adv / "rustsec-advisory-db-md.tar.gz").read_bytes())
    http_server.fail("rustsec/main.tar.gz", [503, 429], retry_after="0")
    from secfoundry.sources.base import Remote

    src = OSVSource()
    live = (Remote(http_server.url("pypa/main.tar.gz"), "pypa-advisory-database-main.tar.gz"),
            Remote(http_server.url("rustsec/main.tar.gz"), "rustsec-advisory-db-main.tar.gz"))
    src.remotes = lambda: live  # type: ignore[method-assign]
    snap = src.fetch(None, fetcher=fast_fetcher)
    assert [p.name for p in snap.files] == ["pypa-advisory-database-main.tar.gz", "rustsec-advisory-db-main.tar.gz"]
    assert all(str(tmp_path / "home" / "sources" / "osv") in str(p) for p in snap.files)
    assert snap.version == "pypa 2024-10-10, rustsec 2026-08-21" and http_server.base in snap.origin
    assert len(http_server.requests_to("rustsec/main.tar.gz")) == 3  # two retried failures
    # Second sync: conditional requests, 304, files kept.
    snap2 = src.fetch(None, fetcher=fast_fetcher)
    last = http_server.requests_to("pypa/main.tar.gz")[-1]
    assert "if-none-match" in last.headers and snap2.files == snap.files
    rust_only = Snapshot("osv", snap2.files[1:], version=snap2.version, extra=snap2.extra)
    assert sum(1 for _ in src.records(rust_only)) == 1205


def test_live_github_advisories_paging_and_token(http_server, tmp_path, monkeypatch):
    pages = [[{"ghsa_id": f"GHSA-aaaa-bbbb-{i:04d}".replace("0", "c"), "summary": f"adv {i}"} for i in range(3)],
             [{"ghsa_id": "GHSA-zzzz-zzzz-zzzz", "summary": "last"}]]

    def handler(req):
        page = int(req.query.get("page", "1"))
        headers = {"Content-Type": "application/json"}
        if page == 1:
            headers["Link"] = f'<{http_server.url("advisories")}?page=2&per_page=3>; rel="next"'
        return 200, headers, json.dumps(pages[page - 1]).encode()

    http_server.route("advisories", handler)
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    with Fetcher(tmp_path / "dl", retries=1, backoff=0.0, sleep=lambda s: None,
                 key_rules=(KeyRule("127.0.0.1", "GITHUB_TOKEN", "Authorization", "Bearer {key}"),)) as f:
        out = fetch_github_advisories(f, tmp_path / "gh.json", per_page=3, url=http_server.url("advisories"))
    reqs = http_server.requests_to("advisories")
    assert len(reqs) == 2 and reqs[0].query["per_page"] == "3" and reqs[0].query["type"] == "reviewed"
    assert reqs[1].query == {"page": "2", "per_page": "3"}
    assert all(r.headers["authorization"] == "Bearer t0ken" for r in reqs)
    recs = list(OSVSource().records(Snapshot("osv", [out])))
    assert [r.name for r in recs] == ["adv 0", "adv 1", "adv 2", "last"]


def test_live_osv_api(http_server, fast_fetcher, mirror):
    data = (mirror / "advisories" / "ghsa-sample" / "GHSA-5667-3wch-7q7w.json").read_bytes()
    http_server.add_file("v1/vulns/GHSA-5667-3wch-7q7w", data)
    http_server.fail("v1/vulns/GHSA-5667-3wch-7q7w", [502])
    r = osv_vuln(fast_fetcher, "GHSA-5667-3wch-7q7w", base=http_server.url("v1/vulns/"))
    assert r.id == "GHSA-5667-3wch-7q7w" and r.aliases == ["CVE-2024-1023"]


def test_live_fetch_adds_github_advisories_when_a_token_is_set(http_server, fast_fetcher, monkeypatch, tmp_path):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    http_server.add_file("empty.tar.gz", make_tgz(tmp_path / "e.tar.gz", {"x/README.md": b"hi"}).read_bytes())
    http_server.route("gh/advisories", lambda req: (200, {"Content-Type": "application/json"}, json.dumps(
        [{"ghsa_id": "GHSA-zzzz-zzzz-zzzz", "summary": "from the API", "cve_id": "CVE-2025-0001"}]).encode()))
    monkeypatch.setattr("secfoundry.sources.osv.GITHUB_ADVISORIES_API", http_server.url("gh/advisories"))
    from secfoundry.sources.base import Remote

    src = OSVSource()
    src.remotes = lambda: (Remote(http_server.url("empty.tar.gz"), "pypa-advisory-database-main.tar.gz"),)  # type: ignore[method-assign]
    snap = src.fetch(None, fetcher=fast_fetcher)
    assert snap.files[-1].name == "github-advisories.json" and http_server.url("gh/advisories") in snap.origin
    recs = list(src.records(snap))
    assert [(r.id, r.aliases) for r in recs] == [("GHSA-zzzz-zzzz-zzzz", ["CVE-2025-0001"])]
    assert snap.extra["stats"] == {"github_advisories": 1}
