"""Materialised ``kb show`` entries: the bytes ``kb show --json`` prints, for every id, and never
served once the KB changed under them."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ._kbsynth import ATTACKISH, rec, write_source

from secfoundry.kb import KnowledgeBase, rendered
from secfoundry.kb.dense import HashEmbedder


def _sync(kb: KnowledgeBase, mirror: Path, connectors, **kw):
    return kb.sync(mirror=mirror, connectors=connectors, dense=False, **kw)


def test_every_id_rendered_as_cli_json(kb_dir: Path, synth_mirror: Path, connectors) -> None:
    kb = KnowledgeBase.open(kb_dir, embedder=HashEmbedder())
    report = _sync(kb, synth_mirror, connectors)
    assert report.rendered is not None and not report.rendered.skipped
    ids = [r[0] for r in kb.store.conn.execute("SELECT DISTINCT id FROM records")]
    assert report.rendered.ids == len(ids) > 5
    conn = kb.store.conn
    assert rendered.is_current(conn)
    for rid in ids:
        body = rendered.lookup(conn, rid)
        cli = json.dumps(asdict(kb.show(rid)), ensure_ascii=False, default=str).encode()
        assert body == cli, rid
    assert rendered.lookup(conn, "T9999") is None
    # A second sync with nothing changed keeps the rendered table as it is.
    again = _sync(kb, synth_mirror, connectors)
    assert again.rendered is not None and again.rendered.skipped


def test_stale_after_a_changed_sync_without_render(kb_dir: Path, synth_mirror: Path, connectors) -> None:
    kb = KnowledgeBase.open(kb_dir, embedder=HashEmbedder())
    _sync(kb, synth_mirror, connectors)
    before = rendered.lookup(kb.store.conn, "T1003.001")
    assert before is not None and b"LSASS Memory" in before
    changed = [dict(r) for r in ATTACKISH]
    for r in changed:
        if r["id"] == "T1003.001":
            r["name"] = "LSASS Memory (renamed)"
    write_source(synth_mirror, "alpha", changed + [rec("T1999", "technique", "Brand New")], "18.2")
    _sync(kb, synth_mirror, connectors, render=False)
    assert not rendered.is_current(kb.store.conn)  # the service builds entries again instead
    stats = kb.render()
    assert not stats.skipped and rendered.is_current(kb.store.conn)
    assert b"(renamed)" in rendered.lookup(kb.store.conn, "T1003.001")
    assert rendered.lookup(kb.store.conn, "T1999") is not None


def test_store_from_before_the_table(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "old.sqlite")
    conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
    assert not rendered.is_current(conn)
    assert rendered.lookup(conn, "T1003") is None


def test_cli_render_refuses_a_kb_never_synced(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from secfoundry.cli import app

    r = CliRunner().invoke(app, ["kb", "render", "--db", str(tmp_path / "nokb")])
    assert r.exit_code == 2 and "kb sync" in r.output
    assert not (tmp_path / "nokb" / "kb.sqlite").exists()
