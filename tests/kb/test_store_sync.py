"""Store, FTS and relations; incremental and resumable sync with synthetic connectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from secfoundry.kb import KnowledgeBase
from secfoundry.core.records import Record, Relation
from secfoundry.kb.store import SourceRow, Store

from ._kbsynth import ATTACKISH, rec, write_source


def _sync(kb: KnowledgeBase, mirror: Path, connectors, **kw):
    kw.setdefault("dense", False)
    return kb.sync(mirror=mirror, connectors=connectors, **kw)


def test_store_roundtrip_fts_relations(tmp_path: Path) -> None:
    st = Store(tmp_path / "kb.sqlite")
    recs = [Record("t1059.1", "technique", "PowerShell", "Abuse of PowerShell scripts.", "s",
                   relations=[Relation("subtechnique-of", "T1059"),
                              Relation("uses", "S0002", {"description": "PowerShell launches mimikatz in memory."})],
                   aliases=["PS"], attributes={"platforms": ["Windows"]}),
            Record("T1059", "technique", "Command and Scripting Interpreter", "Interpreters.", "s")]
    row = st.replace_source(SourceRow(name="s", version="1"), iter(recs))
    assert (row.records, row.relations, row.passages, row.status) == (2, 2, 1, "done")
    got = st.records_by_id("T1059.001")  # the id was normalised on the way in
    assert len(got) == 1 and got[0].attributes == {"platforms": ["Windows"]} and got[0].aliases == ["PS"]
    assert [r.dst for r in st.relations_from("T1059.001")] == ["T1059", "S0002"]
    assert [r.src for r in st.relations_to("T1059")] == ["T1059.001"]
    assert st.ids_for_alias("ps") == ["T1059.001"]
    fts = st.conn.execute("SELECT rowid FROM records_fts WHERE records_fts MATCH 'powershell'").fetchall()
    assert len(fts) == 1
    # Replacing the source drops every row it owned, FTS included.
    st.replace_source(SourceRow(name="s", version="2"), iter(recs[1:]))
    assert st.records_by_id("T1059.001") == [] and st.relations_from("T1059.001") == []
    assert st.conn.execute("SELECT count(*) FROM records_fts WHERE records_fts MATCH 'powershell'").fetchone()[0] == 0
    assert st.conn.execute("SELECT count(*) FROM passages_fts").fetchone()[0] == 0
    assert st.source("s").version == "2"


def test_duplicate_ids_keep_last_copy(tmp_path: Path) -> None:
    st = Store(tmp_path / "kb.sqlite")
    recs = [Record("CWE-1", "weakness", "old", "first", "s", relations=[Relation("child-of", "CWE-2")]),
            Record("cwe-1", "weakness", "new", "second", "s")]
    row = st.replace_source(SourceRow(name="s"), iter(recs))
    assert row.records == 1 and row.stats["duplicate_ids"] == 1
    assert st.records_by_id("CWE-1")[0].name == "new" and st.relations_from("CWE-1") == []


def test_failed_source_rolls_back(tmp_path: Path) -> None:
    st = Store(tmp_path / "kb.sqlite")
    st.replace_source(SourceRow(name="s", version="1"), iter([Record("T1", "technique", "keep", "", "s")]))

    def broken():
        yield Record("T2", "technique", "partial", "", "s")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        st.replace_source(SourceRow(name="s", version="2"), broken())
    assert [r.name for r in st.records_by_id("T1")] == ["keep"] and st.records_by_id("T2") == []
    assert st.source("s").version == "1"


def test_incremental_sync_skips_unchanged(kb_dir: Path, synth_mirror: Path, connectors) -> None:
    kb = KnowledgeBase.open(kb_dir)
    r1 = _sync(kb, synth_mirror, connectors)
    assert [r.status for r in r1.results] == ["synced"] * 3 and not r1.failed
    assert {s.name: s.records for s in kb.status().sources} == {"alpha": 9, "beta": 3, "kev": 3}
    r2 = _sync(kb, synth_mirror, connectors)
    assert [r.status for r in r2.results] == ["unchanged"] * 3
    write_source(synth_mirror, "beta", [rec("CWE-79", "weakness", "XSS", "changed")], "4.15")
    r3 = _sync(kb, synth_mirror, connectors)
    assert {r.name: r.status for r in r3.results} == {"alpha": "unchanged", "beta": "synced", "kev": "unchanged"}
    assert kb.status().sources[1].version == "4.15" and kb.show("CWE-79").description == "changed"
    r4 = _sync(kb, synth_mirror, connectors, force=True, sources="alpha")
    assert [(r.name, r.status) for r in r4.results] == [("alpha", "synced")]


def test_resume_after_crash(kb_dir: Path, synth_mirror: Path, connectors) -> None:
    kb = KnowledgeBase.open(kb_dir)

    def crash_after_alpha(name: str) -> None:
        if name == "alpha":
            raise KeyboardInterrupt  # the process dies between two sources

    with pytest.raises(KeyboardInterrupt):
        _sync(kb, synth_mirror, connectors, force=True, after_source=crash_after_alpha)
    assert kb.store.last_run()["status"] == "running"
    assert {s.name for s in kb.status().sources} == {"alpha"}
    # Even with --force, the resumed run does not redo the source it had finished.
    r = _sync(kb, synth_mirror, connectors, force=True)
    assert r.resumed and {x.name: x.status for x in r.results} == {"alpha": "resumed", "beta": "synced",
                                                                   "kev": "synced"}
    assert kb.store.last_run()["status"] == "done"
    # A finished run is not resumed again.
    assert not _sync(kb, synth_mirror, connectors).resumed


def test_crash_inside_a_source_keeps_previous_data(kb_dir: Path, synth_mirror: Path, connectors) -> None:
    kb = KnowledgeBase.open(kb_dir)
    _sync(kb, synth_mirror, connectors)
    write_source(synth_mirror, "alpha", ATTACKISH[:2] + [{"crash": True}], "18.2")
    r = _sync(kb, synth_mirror, connectors)
    assert {x.name: x.status for x in r.results}["alpha"] == "failed" and "parser crashed" in r.failed[0].error
    alpha = next(s for s in kb.status().sources if s.name == "alpha")
    assert alpha.status == "failed" and alpha.version == "18.1" and alpha.records == 9
    assert kb.show("T1059.001") is not None  # old data still served


def test_quarantine_and_unavailable(kb_dir: Path, synth_mirror: Path, connectors) -> None:
    write_source(synth_mirror, "beta", [rec("CWE-1", "weakness", "ok"), {"bad": True}], "1")
    kb = KnowledgeBase.open(kb_dir)
    r = _sync(kb, synth_mirror, connectors)
    assert len(r.quarantine) == 1 and r.quarantine[0]["entry"] == 1
    assert (kb_dir / "quarantine" / "beta.jsonl").exists()
    assert next(s for s in kb.status().sources if s.name == "beta").quarantined == 1
    # A source missing from the mirror is "unavailable": reported, other sources go on, data kept.
    (synth_mirror / "kev" / "records.json").unlink()
    r = _sync(kb, synth_mirror, connectors)
    assert {x.name: x.status for x in r.results}["kev"] == "unavailable" and not r.failed
    assert kb.show("CVE-2024-3400") is not None
    r = _sync(kb, synth_mirror, connectors, sources=["kev"])
    assert r.failed  # asked for explicitly: a failure


def test_unknown_source_is_an_input_error(kb_dir: Path, synth_mirror: Path, connectors) -> None:
    from secfoundry.core.errors import InputError

    with pytest.raises(InputError, match="unknown source"):
        _sync(KnowledgeBase.open(kb_dir), synth_mirror, connectors, sources="alpha,nope")
