"""show (merged, typed sections), search (lanes, fusion, type filter, exclusion), resolve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from secfoundry.kb import KnowledgeBase
from secfoundry.kb.dense import DenseIndex, DensePolicy, HashEmbedder
from secfoundry.kb.search import fts_query, resolve_types


@pytest.fixture
def kb(kb_dir: Path, synth_mirror: Path, connectors) -> KnowledgeBase:
    kb = KnowledgeBase.open(kb_dir, embedder=HashEmbedder())
    report = kb.sync(mirror=synth_mirror, connectors=connectors,
                     policy=DensePolicy(skip_types=frozenset(), passages=True))
    assert report.dense is not None and report.dense.embedded > 0 and not report.dense_error
    return kb


def test_show_technique_sections(kb: KnowledgeBase) -> None:
    e = kb.show("t1003.1")
    assert e is not None and e.id == "T1003.001" and e.name == "LSASS Memory" and e.type == "technique"
    s = {k: [r.id for r in v] for k, v in e.sections.items()}
    assert s["parents"] == ["T1003"]
    assert s["mitigations"] == ["M1043"]
    assert s["detections"] == ["sigma:aaaa"]  # the Sigma tag attack.t1003.001 was normalised
    assert s["tests"] == ["atomic:bbbb"]
    assert s["used_by"] == ["G0007"]
    used = e.sections["used_by"][0]
    assert used.note.startswith("APT28 regularly deploys mimikatz") and "Citation" not in used.note
    parent = kb.show("T1003")
    assert [r.id for r in parent.sections["children"]] == ["T1003.001"]
    d = e.to_dict()
    assert d["sections"]["mitigations"][0]["name"] == "Credential Access Protection"


def test_show_cwe_kev_alias_and_revoked(kb: KnowledgeBase) -> None:
    cwe = kb.show("cwe79")
    s = {k: [r.id for r in v] for k, v in cwe.sections.items()}
    assert s["parents"] == ["CWE-74"] and s["related_attack_patterns"] == ["CAPEC-63"]
    assert [r.id for r in kb.show("CWE-74").sections["children"]] == ["CWE-79", "CWE-89"]
    cve = kb.show("CVE-2024-3400")
    assert cve.kev and cve.kev["date_added"] == "2024-04-12"
    assert [r.id for r in cve.sections["related_weaknesses"]] == ["CWE-77"]
    group = kb.show("Fancy Bear")  # alias lookup
    assert group.id == "G0007" and group.query == "Fancy Bear"
    old = kb.show("T1086")
    assert old.revoked and old.replaced_by == "T1059.001"
    assert kb.show("T9999") is None and kb.show("nonsense") is None


def test_resolve_and_validate(kb: KnowledgeBase) -> None:
    assert kb.resolve("t1086") == "T1059.001"
    assert kb.resolve("T1003.001") == "T1003.001"
    c = kb.validate("T1086")
    assert c.known and c.revoked and c.replaced_by == "T1059.001" and c.chain == ("T1086", "T1059.001")
    unknown = kb.validate("T1999")
    assert unknown.syntax_ok and unknown.known is False
    assert not kb.validate("T12").syntax_ok


def test_search_lanes_and_type_filter(kb: KnowledgeBase) -> None:
    hits = kb.search("credential dumping from lsass memory", k=5)
    assert hits and hits[0].id in {"T1003.001", "T1003"}
    assert {"bm25", "dense"} <= set(hits[0].ranks)
    techs = kb.search("credential dumping from lsass memory", type="technique", k=10)
    assert techs and all(h.type == "technique" for h in techs)
    assert [h.id for h in techs][:2] == ["T1003.001", "T1003"] or [h.id for h in techs][:2] == ["T1003", "T1003.001"]
    cwes = kb.search("sql query built from user input", type="cwe", k=3)
    assert cwes[0].id == "CWE-89" and all(h.type == "weakness" for h in cwes)
    # An id in the query is an exact-match lane that wins.
    assert kb.search("what is T1190?", k=3)[0].id == "T1190"
    assert kb.search("zzzz qqqq", k=3, lanes=("bm25", "passages")) == []


def test_passage_lane_and_holdout(kb: KnowledgeBase) -> None:
    q = "deploys mimikatz to read process memory"
    hits = kb.search(q, type="technique", k=3)
    top = hits[0]
    assert top.id == "T1003.001" and "passages" in top.ranks and "mimikatz" in top.evidence
    held = kb.search(q, type="technique", k=3, exclude={("G0007", "T1003.001")})
    assert all("passages" not in h.ranks for h in held if h.id == "T1003.001")
    held_ref = kb.search(q, type="technique", k=3, exclude={("relationship--1", "T1003.001")})
    assert all(h.evidence == "" for h in held_ref if h.id == "T1003.001")


def test_dense_index_persisted_and_incremental(kb: KnowledgeBase, synth_mirror: Path, connectors) -> None:
    idx = DenseIndex.load(kb.paths.dense)
    assert idx is not None and idx.vectors.shape[1] == 384
    assert np.allclose(np.linalg.norm(idx.vectors, axis=1), 1.0, atol=1e-2)
    kinds = {e.kind for e in idx.entries}
    assert kinds == {"record", "passage"}
    # Nothing changed: no rebuild. A forced re-sync re-embeds nothing (the cache answers).
    policy = DensePolicy(skip_types=frozenset(), passages=True)
    assert kb.sync(mirror=synth_mirror, connectors=connectors, policy=policy).dense is None
    r = kb.sync(mirror=synth_mirror, connectors=connectors, policy=policy, force=True)
    assert r.dense is not None and r.dense.embedded == 0 and r.dense.cached == r.dense.unique_texts
    # A policy change rebuilds from the cache, here dropping passages.
    r = kb.sync(mirror=synth_mirror, connectors=connectors, policy=DensePolicy(skip_types=frozenset()))
    assert r.dense is not None and r.dense.embedded == 0
    assert {e.kind for e in DenseIndex.load(kb.paths.dense).entries} == {"record"}


def test_query_helpers() -> None:
    assert fts_query('the "lsass" OR memory* NEAR(x)') == '"lsass" OR "memory" OR "near"'
    assert fts_query("the of and") == ""
    assert resolve_types("cwe, capec,technique") == ["weakness", "attack-pattern", "technique"]
    assert resolve_types(None) is None


def test_status(kb: KnowledgeBase) -> None:
    st = kb.status()
    assert [s.name for s in st.sources] == ["alpha", "beta", "kev"]
    assert st.counts["records"] == 15 and st.dense["state"] == "fresh" and st.dense["rows"] > 15
    assert st.to_dict()["sources"][0]["version"] == "18.1"


def test_interrupted_embedding_resumes_from_cache(kb_dir: Path, synth_mirror: Path, connectors, monkeypatch) -> None:
    import secfoundry.kb.dense as dense

    monkeypatch.setattr(dense, "CHUNK", 4)

    class Flaky(HashEmbedder):
        calls = 0

        def encode(self, texts):
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise RuntimeError("killed while embedding")
            return super().encode(texts)

    kb = KnowledgeBase.open(kb_dir, embedder=Flaky())
    r = kb.sync(mirror=synth_mirror, connectors=connectors)
    assert r.dense is None and "killed while embedding" in r.dense_error
    assert kb.store.get_meta("dense_state") == "stale" and not r.failed
    kb2 = KnowledgeBase.open(kb_dir, embedder=HashEmbedder())
    r2 = kb2.sync(mirror=synth_mirror, connectors=connectors)
    assert [x.status for x in r2.results] == ["unchanged"] * 3
    assert r2.dense is not None and r2.dense.cached == 4 and r2.dense.embedded == r2.dense.unique_texts - 4
    assert kb2.search("lsass memory", k=1, lanes=("dense",))


def test_kb_paths_file_form(tmp_path: Path) -> None:
    from secfoundry.kb.sync import KBPaths

    p = KBPaths.at(tmp_path / "my.sqlite")
    assert p.db.name == "my.sqlite" and p.dense.name == "my.dense" and p.quarantine.parent == tmp_path
    d = KBPaths.at(tmp_path / "kbdir")
    assert d.db == tmp_path / "kbdir" / "kb.sqlite" and d.dense == tmp_path / "kbdir" / "dense"
