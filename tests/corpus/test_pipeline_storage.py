"""Partition storage: atomic commits, markers as the commit point, stray cleanup (no Ray)."""

from __future__ import annotations

from secfoundry.corpus.step import Dropped
from secfoundry.corpus.engine.storage import PhaseStore, read_documents
from secfoundry.corpus.engine.workers import reason_key
from secfoundry.core.documents import Document


def docs(n: int, prefix: str = "d") -> list[Document]:
    return [Document(id=f"{prefix}{i}", text=f"text {i}", source="s", metadata={"i": i}) for i in range(n)]


def test_commit_and_strays(tmp_path):
    st = PhaseStore(tmp_path / "p")
    files = [st.write_data("a.parquet", docs(3))]
    excl = [st.write_excluded("a.parquet", [Dropped(docs(1, "x")[0], "f", "f:bad")])]
    st.write_marker("a", files, excl, {"docs_in": 4, "docs_out": 3}, quarantine=[{"file": "in", "entry": 2}])
    # a killed attempt at partition b: its data file landed but its marker never did, plus a temp file
    st.write_data("b.parquet", docs(2, "b"))
    (st.data_dir / ".c.parquet.1234.tmp").write_bytes(b"partial")
    assert st.done_keys() == {"a"}
    assert [p.name for p in st.committed_files(["a", "b"])] == ["a.parquet"]
    assert st.clean_strays() == 2
    assert sorted(p.name for p in st.data_dir.iterdir()) == ["a.parquet"]
    got = read_documents(st.data_dir / "a.parquet")
    assert [d.id for d in got] == ["d0", "d1", "d2"] and got[2].metadata == {"i": 2}
    assert (st.root / "quarantine" / "a.jsonl").read_text().count("\n") == 1
    m = st.marker("a")
    assert m["files"] == ["a.parquet"] and m["excluded_files"] == ["a.parquet"] and m["docs_in"] == 4


def test_reason_keys_group_without_scores():
    assert reason_key("relevance", "relevance:0.12") == "relevance"
    assert reason_key("langid", "lang:de") == "lang:de"
    assert reason_key("quality", "short") == "quality:short"
    assert reason_key("boom", "error:ValueError: bad row 7") == "boom:error:ValueError"


def test_one_run_per_output_dir(tmp_path):
    import pytest

    from secfoundry.corpus.engine.recipe import Recipe
    from secfoundry.corpus.engine.runner import Runner
    from secfoundry.core.errors import InputError

    a = Runner(Recipe(), tmp_path)
    b = Runner(Recipe(), tmp_path)
    tmp_path.mkdir(exist_ok=True)
    with a._lock():
        with pytest.raises(InputError, match="another corpus run"):
            with b._lock():
                pass
    with b._lock():  # released
        pass
