"""OWASP cheat sheets connector: 120 sheets, Markdown kept, links absolutised, bad files, live tarball."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Remote, registry
from secfoundry.sources.owasp import OWASPCheatSheetsSource, absolutize, sheet_record

from .helpers import parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(OWASPCheatSheetsSource(), mirror)


def test_registered():
    assert registry()["owasp"] is OWASPCheatSheetsSource


def test_counts_and_license(parsed, mirror):
    _, snap, q, recs = parsed
    files = sorted((mirror / "owasp-cheatsheets" / "cheatsheets").glob("*.md"))
    assert len(files) == 120 == len(recs) and len(q) == 0
    assert {f"owasp:{f.stem}" for f in files} == set(recs)
    assert {r.license for r in recs.values()} == {"CC-BY-SA-4.0"}
    assert snap.version.startswith("sha256:")


def test_sheet_record(parsed):
    r = parsed[3]["owasp:SQL_Injection_Prevention_Cheat_Sheet"]
    assert r.name == "SQL Injection Prevention Cheat Sheet" and r.type == "cheatsheet"
    assert r.url == "https://cheatsheetseries.owasp.org/cheatsheets/SQL_Injection_Prevention_Cheat_Sheet.html"
    assert "Introduction" in r.attributes["sections"] and r.description
    targets = {(x.type, x.target) for x in r.relations}
    assert ("related-cheatsheet", "owasp:Query_Parameterization_Cheat_Sheet") in targets


def test_relations_to_cwe_and_cve(parsed):
    recs = parsed[3].values()
    kinds = {x.type for r in recs for x in r.relations}
    assert {"related-weakness", "related-vulnerability", "related-cheatsheet"} <= kinds
    cwes = {x.target for r in recs for x in r.relations if x.type == "related-weakness"}
    assert all(c.startswith("CWE-") and c[4:].isdigit() for c in cwes)


def test_documents_keep_markdown(parsed, mirror):
    src, snap, _, _ = parsed
    docs = {d.id: d for d in src.documents(snap)}
    assert len(docs) == 120
    d = docs["owasp:JAAS_Cheat_Sheet"]
    raw = (mirror / "owasp-cheatsheets" / "cheatsheets" / "JAAS_Cheat_Sheet.md").read_text(encoding="utf-8")
    assert d.text.strip() == absolutize(raw).strip() and d.text.startswith("# JAAS Cheat Sheet")
    assert d.license == "CC-BY-SA-4.0" and d.title == "JAAS Cheat Sheet" and d.version == snap.version
    assert "CC BY-SA 4.0" in d.metadata["attribution"]


def test_absolutize():
    md = "See [X](Other_Cheat_Sheet.md#part) and ![img](../assets/a.png) and [ext](https://e.org/x.md)"
    assert absolutize(md) == ("See [X](https://cheatsheetseries.owasp.org/cheatsheets/Other_Cheat_Sheet.html#part)"
                              " and ![img](https://cheatsheetseries.owasp.org/assets/a.png) and [ext](https://e.org/x.md)")


def test_headings_inside_code_fences_are_not_sections():
    r = sheet_record("# T\n\nIntro CWE-79.\n\n```bash\n# comment\n```\n\n## Real\n\ntext\n", stem="T_Cheat_Sheet",
                     file="f", version="v")
    assert r.attributes["sections"] == ["Real"] and r.description.startswith("Intro CWE-79.")
    assert [(x.type, x.target) for x in r.relations] == [("related-weakness", "CWE-79")]


def test_malformed_files_are_quarantined(tmp_path):
    d = tmp_path / "owasp-cheatsheets" / "cheatsheets"
    d.mkdir(parents=True)
    (d / "Good_Cheat_Sheet.md").write_text("# Good Cheat Sheet\n\nBody.\n", encoding="utf-8")
    (d / "Latin_Cheat_Sheet.md").write_bytes("# Caf\xe9 Cheat Sheet\n".encode("latin-1"))
    (d / "Empty_Cheat_Sheet.md").write_text("", encoding="utf-8")
    (d / "Untitled_Cheat_Sheet.md").write_text("no heading here\n", encoding="utf-8")
    src = OWASPCheatSheetsSource()
    snap = src.fetch(tmp_path)
    q = Quarantine()
    assert [r.id for r in src.records(snap, q)] == ["owasp:Good_Cheat_Sheet"]
    errors = {i["entry"]: i["error"] for i in q.items}
    assert "not valid UTF-8" in errors["Latin_Cheat_Sheet.md"]
    assert "empty cheat sheet" in errors["Empty_Cheat_Sheet"] and "no '# Title' heading" in errors["Untitled_Cheat_Sheet"]
    assert len(list(src.documents(snap))) == 1


def test_live_tarball(http_server, fast_fetcher, mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted((mirror / "owasp-cheatsheets" / "cheatsheets").glob("*.md"))[:5]:
            tar.add(f, arcname=f"CheatSheetSeries-master/cheatsheets/{f.name}")
        data = b"# Not a sheet\n"
        info = tarfile.TarInfo("CheatSheetSeries-master/README.md")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    http_server.add_file("owasp/master.tar.gz", buf.getvalue())
    http_server.fail("owasp/master.tar.gz", [503], retry_after="0")
    monkeypatch.setattr(OWASPCheatSheetsSource, "tarball",
                        Remote(http_server.url("owasp/master.tar.gz"), "CheatSheetSeries-master.tar.gz"))
    src = OWASPCheatSheetsSource()
    snap = src.fetch(None, fetcher=fast_fetcher)
    assert len(list(src.records(snap))) == 5 and len(snap.version) == 10  # tarball date, YYYY-MM-DD
    src.fetch(None, fetcher=fast_fetcher)
    assert "if-none-match" in http_server.requests_to("owasp/master.tar.gz")[-1].headers
