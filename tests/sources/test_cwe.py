"""CWE connector: counts against the XML file, relations, mapping notes, unsafe/malformed XML."""

from __future__ import annotations

import gzip
import io
import re
import zipfile
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Snapshot, registry
from secfoundry.sources.cwe import CweSource
from secfoundry.core.download import Fetcher

from .helpers import parse_mirror

NS = 'xmlns="http://cwe.mitre.org/cwe-7" xmlns:xhtml="http://www.w3.org/1999/xhtml"'


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(CweSource(), mirror)


def test_registered():
    assert registry()["cwe"] is CweSource


def test_counts_against_file(parsed, mirror):
    src, snap, q, recs = parsed
    raw = gzip.decompress((mirror / "cwe" / "cwec_v4.14.xml.gz").read_bytes()).decode()
    n_weak = len(re.findall(r"<Weakness ID=", raw))
    n_cat = len(re.findall(r"<Category ID=", raw))
    n_view = len(re.findall(r"<View ID=", raw))
    assert (n_weak, n_cat, n_view) == (963, 409, 54)
    st = snap.extra["stats"]
    assert (st["type:weakness"], st["type:cwe-category"], st["type:cwe-view"]) == (n_weak, n_cat, n_view)
    assert st["deprecated"] == len(re.findall(r'(?:<Weakness|<Category|<View) [^>]*Status="Deprecated"', raw))
    assert snap.version == "4.14" and snap.extra["date"] == "2024-02-29"
    assert len(q) == 0


def test_weakness_fields_and_relations(parsed):
    *_, recs = parsed
    xss = recs["CWE-79"]
    assert xss.type == "weakness" and "Cross-site Scripting" in xss.name
    assert xss.attributes["abstraction"] == "Base"
    assert xss.attributes["mapping"]["usage"] == "Allowed"
    rels = {(r.type, r.target) for r in xss.relations}
    assert ("child-of", "CWE-74") in rels and ("related-attack-pattern", "CAPEC-63") in rels
    assert any(t == "observed-example" and x.startswith("CVE-") for t, x in rels)
    assert any(r.type == "child-of" and r.attributes.get("view_id") == "1000" for r in xss.relations)
    # Derived inverse: the parent lists the child.
    assert any(r.type == "parent-of" and r.target == "CWE-79" for r in recs["CWE-74"].relations)
    assert xss.attributes["observed_examples"][0]["reference"].startswith("CVE-")
    assert xss.version == "4.14" and xss.url.endswith("/79.html")


def test_categories_views_and_usage_values(parsed):
    *_, recs = parsed
    assert recs["CWE-1000"].type == "cwe-view" and any(r.type == "has-member" for r in recs["CWE-1000"].relations)
    cat = next(r for r in recs.values() if r.type == "cwe-category" and not r.deprecated)
    assert any(r.type == "has-member" for r in cat.relations)
    usages = {r.attributes.get("mapping", {}).get("usage") for r in recs.values()}
    assert {"Allowed", "Discouraged", "Prohibited"} <= usages


def test_deprecated_flagged_with_successor(parsed):
    *_, recs = parsed
    dep = recs["CWE-1187"]
    assert dep.deprecated and dep.replaced_by == "CWE-908"
    assert dep.attributes["mapping"]["usage"] == "Prohibited"


def test_documents(parsed):
    src, snap, q, _ = parsed
    docs = {d.id: d for d in src.documents(snap, q)}
    d = docs["cwe:CWE-1004"]
    assert d.title.startswith("CWE-1004: Sensitive Cookie") and d.license == src.license
    assert "```java" in d.text and "c.setHttpOnly(true);" in d.text and d.version == "4.14"
    assert "cwe:CWE-1187" not in docs


def _catalog(body: str, prolog: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>{prolog}'
            f'<Weakness_Catalog Name="CWE" Version="9.9" Date="2030-01-01" {NS}><Weaknesses>{body}'
            f"</Weaknesses></Weakness_Catalog>").encode()


W1 = ('<Weakness ID="1" Name="One" Abstraction="Base" Structure="Simple" Status="Draft">'
      '<Description>first</Description></Weakness>')
W2 = ('<Weakness ID="2" Name="Two" Abstraction="Base" Structure="Simple" Status="Draft">'
      '<Description>second</Description><Related_Weaknesses>'
      '<Related_Weakness Nature="ChildOf" CWE_ID="1" View_ID="1000"/></Related_Weaknesses></Weakness>')


def _run(tmp_path: Path, name: str, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    q = Quarantine()
    recs = {r.id: r for r in CweSource().records(Snapshot("cwe", [p]), q)}
    return recs, q


def test_small_catalog_and_zip(tmp_path):
    data = _catalog(W1 + W2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cwec_v9.9.xml", data)
    recs, q = _run(tmp_path, "cwec_v9.9.xml.zip", buf.getvalue())
    assert set(recs) == {"CWE-1", "CWE-2"} and len(q) == 0
    assert recs["CWE-2"].version == "9.9"


def test_xxe_rejected(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    prolog = f'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    body = W1.replace("first", "&xxe;")
    recs, q = _run(tmp_path, "xxe.xml", _catalog(body, prolog))
    assert not recs and len(q) == 1
    assert "refused unsafe XML" in q.items[0]["error"] and "xxe.xml" in q.items[0]["error"]
    assert all("TOPSECRET" not in r.description for r in recs.values())


def test_entity_bomb_rejected(tmp_path):
    ents = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    recs, q = _run(tmp_path, "bomb.xml", _catalog(W1.replace("first", "&lol9;"), f"<!DOCTYPE x [{ents}]>"))
    assert not recs and "refused unsafe XML" in q.items[0]["error"]


def test_broken_xml_keeps_entries_before_the_break(tmp_path):
    data = _catalog(W1 + W2 + '<Weakness ID="3" Name="Three"><Description>oops</Weakness>')
    recs, q = _run(tmp_path, "broken.xml", data)
    assert set(recs) == {"CWE-1", "CWE-2"}
    err = q.items[0]["error"]
    assert "broken.xml" in err and "malformed XML at line" in err and "after entry ID=2" in err


def test_truncated_gzip_and_bad_entry_and_wrong_root(tmp_path):
    big = _catalog("".join(W1.replace('ID="1"', f'ID="{i}"') for i in range(1, 3000)))
    recs, q = _run(tmp_path, "trunc.xml.gz", gzip.compress(big)[:4000])
    assert 0 < len(recs) < 2999 and "trunc.xml.gz" in q.items[0]["error"]
    recs, q = _run(tmp_path, "badid.xml", _catalog(W1 + W1.replace('ID="1"', 'ID="x"')))
    assert set(recs) == {"CWE-1"} and q.items[0]["entry"] == "Weakness ID=x"
    recs, q = _run(tmp_path, "root.xml", b"<Other/>")
    assert not recs and "not Weakness_Catalog" in q.items[0]["error"]
    recs, q = _run(tmp_path, "latin1.xml", _catalog(W1.replace("first", "caf\xe9")).replace(b"\xc3\xa9", b"\xe9"))
    assert not recs and "malformed XML" in q.items[0]["error"]


def test_live_zip_download_from_loopback(http_server, tmp_path, monkeypatch):
    import secfoundry.sources.cwe as cwe_mod

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cwec_v9.9.xml", _catalog(W1 + W2))
    http_server.add_file("data/xml/cwec_v9.9.xml.zip", buf.getvalue())
    monkeypatch.setattr(cwe_mod, "versioned_url", lambda v: http_server.url(f"data/xml/cwec_v{v}.xml.zip"))
    src = CweSource(version="9.9")
    with Fetcher(tmp_path, retries=0) as f:
        snap = src.fetch(None, fetcher=f)
    assert {r.id for r in src.records(snap)} == {"CWE-1", "CWE-2"}
    assert snap.version == "9.9"
