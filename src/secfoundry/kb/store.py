"""The knowledge-base store: one SQLite file (WAL) with FTS5 indexes; no server.

Over 400 lines: the one SQLite schema (records, relations, FTS5, passages, sources, runs) and
every query on it stay in one place, so that the schema and its users change together.

Tables
- ``records``: one row per (source, id) with the typed fields of ``Record`` (JSON for lists and
  attributes); ``records_fts`` indexes name, aliases/ids and description (rowid = records.rid).
- ``relations``: every edge (source, src, type, dst, attributes), indexed both ways.
- ``aliases``: lower-cased alias -> id (group aliases, advisory aliases such as CVE/GHSA ids).
- ``passages``: short texts that describe a record from elsewhere: ATT&CK procedure examples
  (a ``uses`` relation's description credits its target technique), mitigation/detection notes
  on relations, CWE observed examples. ``passages_fts`` indexes them; search credits the target.
- ``sources``: name, version, origin, counts, content hash, status, last sync, run id.
- ``runs``: sync runs, so a killed run can be resumed.
- ``vectors``: embedding cache keyed by text hash (only changed texts are re-embedded).

A source is replaced inside one transaction (delete its rows, insert the new ones, mark it
done); a crash leaves the previous version of that source intact.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from secfoundry.kb import ids as idmod
from secfoundry.core.records import Record, Relation
from secfoundry.kb.text import clean

SCHEMA_VERSION = 3
NOTE_CHARS = 400  # relations keep a cleaned, clipped copy of their description for show()
BATCH = 2000
MIN_PASSAGE_CHARS = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sources(
  name TEXT PRIMARY KEY, title TEXT, version TEXT, origin TEXT, license TEXT,
  records INTEGER DEFAULT 0, relations INTEGER DEFAULT 0, passages INTEGER DEFAULT 0,
  quarantined INTEGER DEFAULT 0, content_hash TEXT, status TEXT, run_id INTEGER,
  last_sync REAL, duration REAL, error TEXT, stats TEXT);
CREATE TABLE IF NOT EXISTS runs(
  id INTEGER PRIMARY KEY, started REAL, finished REAL, sources TEXT, options TEXT, status TEXT);
CREATE TABLE IF NOT EXISTS records(
  rid INTEGER PRIMARY KEY, source TEXT NOT NULL, id TEXT NOT NULL, type TEXT, name TEXT,
  description TEXT, url TEXT, version TEXT, license TEXT, aliases TEXT, deprecated INTEGER,
  revoked INTEGER, replaced_by TEXT, attributes TEXT, UNIQUE(source, id));
CREATE INDEX IF NOT EXISTS records_id ON records(id);
CREATE INDEX IF NOT EXISTS records_type ON records(type);
CREATE TABLE IF NOT EXISTS relations(
  source TEXT NOT NULL, src TEXT NOT NULL, type TEXT NOT NULL, dst TEXT NOT NULL, attributes TEXT,
  note TEXT);
CREATE INDEX IF NOT EXISTS relations_src ON relations(src, type);
CREATE INDEX IF NOT EXISTS relations_dst ON relations(dst, type);
CREATE INDEX IF NOT EXISTS relations_source ON relations(source);
CREATE TABLE IF NOT EXISTS aliases(alias TEXT NOT NULL, id TEXT NOT NULL, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS aliases_alias ON aliases(alias);
CREATE INDEX IF NOT EXISTS aliases_source ON aliases(source);
CREATE TABLE IF NOT EXISTS passages(
  pid INTEGER PRIMARY KEY, source TEXT NOT NULL, owner TEXT NOT NULL, target TEXT NOT NULL, via TEXT,
  kind TEXT, ref TEXT, text TEXT);
CREATE INDEX IF NOT EXISTS passages_source ON passages(source);
CREATE TABLE IF NOT EXISTS vectors(hash TEXT PRIMARY KEY, model TEXT, vec BLOB);
CREATE TABLE IF NOT EXISTS rendered(id TEXT PRIMARY KEY, body BLOB);
CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(
  name, ids, body, tokenize='porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(
  text, tokenize='porter unicode61 remove_diacritics 2');
"""


@dataclass
class SourceRow:
    name: str
    title: str = ""
    version: str = ""
    origin: str = ""
    license: str = ""
    records: int = 0
    relations: int = 0
    passages: int = 0
    quarantined: int = 0
    content_hash: str = ""
    status: str = ""
    run_id: int | None = None
    last_sync: float | None = None
    duration: float | None = None
    error: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class IdState:
    """An id's flags merged over every source that has it."""

    id: str
    name: str
    type: str
    revoked: bool
    deprecated: bool
    replaced_by: str | None
    sources: list[str]


@dataclass
class RelationRow:
    source: str
    src: str
    type: str
    dst: str
    attributes: dict[str, Any]


@dataclass
class Passage:
    target: str  # the record the text describes (credited by search)
    via: str  # the record (or reference) it came from
    kind: str  # relation type or "observed-example"
    ref: str  # stable reference: STIX relationship id, CVE id of an observed example ...
    text: str


def passages_of(rec: Record) -> Iterator[Passage]:
    """Texts about other records carried by ``rec`` (see module docstring)."""
    for rel in rec.relations:
        desc = rel.attributes.get("description") if rel.attributes else None
        if isinstance(desc, str):
            text = clean(desc)
            if len(text) >= MIN_PASSAGE_CHARS:
                yield Passage(idmod.normalize_or_keep(rel.target), rec.id, rel.type,
                              str(rel.attributes.get("stix_id") or ""), text)
    for ex in rec.attributes.get("observed_examples") or ():
        if isinstance(ex, dict) and isinstance(ex.get("description"), str):
            text = clean(ex["description"])
            if len(text) >= MIN_PASSAGE_CHARS:
                ref = str(ex.get("reference") or "")
                yield Passage(rec.id, ref, "observed-example", ref, text)


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str)


def _row_record(row: sqlite3.Row) -> Record:
    return Record(
        id=row["id"], type=row["type"], name=row["name"], description=row["description"],
        source=row["source"], url=row["url"] or "", version=row["version"] or "", license=row["license"] or "",
        aliases=json.loads(row["aliases"] or "[]"), deprecated=bool(row["deprecated"]),
        revoked=bool(row["revoked"]), replaced_by=row["replaced_by"],
        attributes=json.loads(row["attributes"] or "{}"),
    )


class Store:
    """Thin typed access to the SQLite file. Not thread-safe; open one per thread."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if readonly:
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        else:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        if not readonly:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self.conn.executescript(_SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.conn.execute("PRAGMA cache_size=-65536")

    def _migrate(self) -> None:
        """A store from another schema version is derived data: drop it (keeping the embedding
        cache) so the next sync rebuilds every source."""
        has_meta = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone()
        if not has_meta:
            return
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row and row[0] == str(SCHEMA_VERSION):
            return
        for name in ("records_fts", "passages_fts", "records", "relations", "aliases", "passages", "sources", "runs",
                     "meta", "rendered"):
            self.conn.execute(f"DROP TABLE IF EXISTS {name}")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (key, value))

    # -- writing a source ---------------------------------------------------------------------------
    def _delete_source(self, c: sqlite3.Connection, name: str) -> None:
        c.execute("DELETE FROM records_fts WHERE rowid IN (SELECT rid FROM records WHERE source=?)", (name,))
        c.execute("DELETE FROM records WHERE source=?", (name,))
        c.execute("DELETE FROM relations WHERE source=?", (name,))
        c.execute("DELETE FROM aliases WHERE source=?", (name,))
        c.execute("DELETE FROM passages_fts WHERE rowid IN (SELECT pid FROM passages WHERE source=?)", (name,))
        c.execute("DELETE FROM passages WHERE source=?", (name,))

    def replace_source(self, row: SourceRow, records: Iterable[Record],
                       progress: Callable[[int], None] | None = None) -> SourceRow:
        """Atomically replace everything ``row.name`` holds with ``records``; mark it done.

        Records repeated within one source keep the last copy (counted in ``stats``).
        """
        t0 = time.time()
        n_rec = n_rel = n_pas = dupes = 0
        with self.transaction() as c:
            self._delete_source(c, row.name)
            batch: list[Record] = []

            def flush() -> None:
                nonlocal n_rel, n_pas, dupes
                r, p, d = self._insert(c, row.name, batch)
                n_rel, n_pas, dupes = n_rel + r, n_pas + p, dupes + d
                batch.clear()

            for rec in records:
                batch.append(rec)
                n_rec += 1
                if len(batch) >= BATCH:
                    flush()
                    if progress:
                        progress(n_rec)
            flush()
            if progress:
                progress(n_rec)
            row.records, row.relations, row.passages = n_rec - dupes, n_rel, n_pas
            if dupes:
                row.stats["duplicate_ids"] = dupes
            row.status, row.last_sync, row.duration, row.error = "done", time.time(), time.time() - t0, ""
            self._upsert_source(c, row)
        return row

    def _insert(self, c: sqlite3.Connection, source: str, batch: list[Record]) -> tuple[int, int, int]:
        rels: list[tuple[Any, ...]] = []
        als: list[tuple[str, str, str]] = []
        pas: list[tuple[str, Passage]] = []
        # A repeated id: the later copy wins and replaces every row of the earlier one.
        last: dict[str, Record] = {}
        for rec in batch:
            last[idmod.normalize_or_keep(rec.id)] = rec
        dupes = len(batch) - len(last)
        for rid, rec in last.items():
            old = c.execute("SELECT rid FROM records WHERE source=? AND id=?", (source, rid)).fetchone()
            if old:  # repeated across batches
                dupes += 1
                c.execute("DELETE FROM records_fts WHERE rowid=?", (old[0],))
                c.execute("DELETE FROM records WHERE rid=?", (old[0],))
                c.execute("DELETE FROM relations WHERE source=? AND src=?", (source, rid))
                c.execute("DELETE FROM aliases WHERE source=? AND id=?", (source, rid))
                c.execute("DELETE FROM passages_fts WHERE rowid IN (SELECT pid FROM passages WHERE source=? AND owner=?)",
                          (source, rid))
                c.execute("DELETE FROM passages WHERE source=? AND owner=?", (source, rid))
            desc = rec.description or ""
            cur = c.execute(
                "INSERT INTO records(source,id,type,name,description,url,version,license,aliases,deprecated,"
                "revoked,replaced_by,attributes) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (source, rid, rec.type, rec.name or "", desc, rec.url, rec.version, rec.license,
                 _json(rec.aliases), int(rec.deprecated), int(rec.revoked),
                 idmod.normalize_or_keep(rec.replaced_by) if rec.replaced_by else None, _json(rec.attributes)))
            id_text = " ".join([rid, *rec.aliases])
            c.execute("INSERT INTO records_fts(rowid,name,ids,body) VALUES(?,?,?,?)",
                      (cur.lastrowid, clean(rec.name), id_text, clean(desc)))
            for rel in rec.relations:
                desc_attr = rel.attributes.get("description") if rel.attributes else None
                rels.append((source, rid, rel.type, idmod.normalize_or_keep(rel.target),
                             _json(rel.attributes) if rel.attributes else None,
                             _clip(clean(desc_attr), NOTE_CHARS) if isinstance(desc_attr, str) and desc_attr else None))
                if rel.type == "alias-of":
                    als.append((idmod.normalize_or_keep(rel.target).lower(), rid, source))
            for a in rec.aliases:
                if a and a.strip():
                    als.append((idmod.normalize_or_keep(a).lower(), rid, source))
            pas.extend((rid, p) for p in passages_of(rec))
        c.executemany("INSERT INTO relations VALUES(?,?,?,?,?,?)", rels)
        c.executemany("INSERT INTO aliases VALUES(?,?,?)", als)
        for owner, p in pas:
            cur = c.execute("INSERT INTO passages(source,owner,target,via,kind,ref,text) VALUES(?,?,?,?,?,?,?)",
                            (source, owner, p.target, p.via, p.kind, p.ref, p.text))
            c.execute("INSERT INTO passages_fts(rowid,text) VALUES(?,?)", (cur.lastrowid, p.text))
        return len(rels), len(pas), dupes

    def _upsert_source(self, c: sqlite3.Connection, row: SourceRow) -> None:
        c.execute(
            "INSERT OR REPLACE INTO sources(name,title,version,origin,license,records,relations,passages,"
            "quarantined,content_hash,status,run_id,last_sync,duration,error,stats) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (row.name, row.title, row.version, row.origin, row.license, row.records, row.relations, row.passages,
             row.quarantined, row.content_hash, row.status, row.run_id, row.last_sync, row.duration, row.error,
             _json(row.stats)))

    def mark_source_failed(self, name: str, error: str, run_id: int | None, status: str = "failed") -> None:
        """Record a failed sync without touching the data the source held before."""
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM sources WHERE name=?", (name,)).fetchone():
                c.execute("UPDATE sources SET status=?, error=?, run_id=? WHERE name=?", (status, error, run_id, name))
            else:
                self._upsert_source(c, SourceRow(name=name, status=status, error=error, run_id=run_id))

    # -- runs -----------------------------------------------------------------------------------------
    def start_run(self, sources: list[str], options: dict[str, Any]) -> int:
        cur = self.conn.execute("INSERT INTO runs(started,sources,options,status) VALUES(?,?,?,'running')",
                                (time.time(), _json(sources), _json(options)))
        return int(cur.lastrowid or 0)

    def last_run(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        if not row:
            return None
        return {"id": row["id"], "started": row["started"], "finished": row["finished"],
                "sources": json.loads(row["sources"]), "options": json.loads(row["options"]), "status": row["status"]}

    def finish_run(self, run_id: int, status: str) -> None:
        self.conn.execute("UPDATE runs SET finished=?, status=? WHERE id=?", (time.time(), status, run_id))

    # -- reading --------------------------------------------------------------------------------------
    def sources(self) -> list[SourceRow]:
        out = []
        for r in self.conn.execute("SELECT * FROM sources ORDER BY name"):
            d = dict(r)
            d["stats"] = json.loads(d.get("stats") or "{}")
            d = {k: ("" if v is None and k in ("title", "version", "origin", "license", "content_hash", "status",
                                                 "error") else v) for k, v in d.items()}
            out.append(SourceRow(**d))
        return out

    def source(self, name: str) -> SourceRow | None:
        return next((s for s in self.sources() if s.name == name), None)

    def records_by_id(self, rid: str) -> list[Record]:
        rows = self.conn.execute("SELECT * FROM records WHERE id=? ORDER BY source", (rid,)).fetchall()
        return [_row_record(r) for r in rows]

    def records_by_rids(self, rids: Iterable[int]) -> dict[int, sqlite3.Row]:
        rids = list(rids)
        if not rids:
            return {}
        q = f"SELECT rid, source, id, type, name, description FROM records WHERE rid IN ({','.join('?' * len(rids))})"
        return {r["rid"]: r for r in self.conn.execute(q, rids)}

    def has_id(self, rid: str) -> bool:
        return self.conn.execute("SELECT 1 FROM records WHERE id=? LIMIT 1", (rid,)).fetchone() is not None

    def ids_for_alias(self, alias: str) -> list[str]:
        rows = self.conn.execute("SELECT DISTINCT id FROM aliases WHERE alias=? ORDER BY id", (alias.lower(),))
        return [r[0] for r in rows]

    def id_state(self, rid: str) -> IdState | None:
        rows = self.conn.execute(
            "SELECT source, type, name, revoked, deprecated, replaced_by FROM records WHERE id=?", (rid,)).fetchall()
        if not rows:
            return None
        replaced = next((r["replaced_by"] for r in rows if r["replaced_by"]), None)
        if replaced is None:
            rel = self.conn.execute("SELECT dst FROM relations WHERE src=? AND type='revoked-by' LIMIT 1",
                                    (rid,)).fetchone()
            replaced = rel[0] if rel else None
        best = max(rows, key=lambda r: (not r["revoked"], not r["deprecated"], bool(r["name"])))
        return IdState(id=rid, name=best["name"] or "", type=best["type"] or "",
                       revoked=any(r["revoked"] for r in rows) and all(r["revoked"] or r["deprecated"] for r in rows),
                       deprecated=all(r["deprecated"] or r["revoked"] for r in rows) and any(r["deprecated"] for r in rows),
                       replaced_by=replaced, sources=[r["source"] for r in rows])

    def relations_from(self, rid: str) -> list[RelationRow]:
        rows = self.conn.execute("SELECT * FROM relations WHERE src=?", (rid,)).fetchall()
        return [RelationRow(r["source"], r["src"], r["type"], r["dst"], json.loads(r["attributes"] or "{}"))
                for r in rows]

    def relations_to(self, rid: str) -> list[RelationRow]:
        rows = self.conn.execute("SELECT * FROM relations WHERE dst=?", (rid,)).fetchall()
        return [RelationRow(r["source"], r["src"], r["type"], r["dst"], json.loads(r["attributes"] or "{}"))
                for r in rows]

    def edges(self, rid: str) -> list[tuple[str, str, str, str, str, str, str]]:
        """Both directions in one go, for show(): (direction, source, relation type, other id,
        note, other's name, other's type). Other ids held by several sources repeat."""
        q = ("SELECT 'out', r.source, r.type, r.dst, coalesce(r.note, ''), coalesce(o.name, ''), "
             "coalesce(o.type, '') FROM relations r LEFT JOIN records o ON o.id = r.dst WHERE r.src=? "
             "UNION ALL SELECT 'in', r.source, r.type, r.src, coalesce(r.note, ''), coalesce(o.name, ''), "
             "coalesce(o.type, '') FROM relations r LEFT JOIN records o ON o.id = r.src WHERE r.dst=?")
        cur = self.conn.cursor()
        cur.row_factory = None  # plain tuples: ~3x cheaper than sqlite3.Row on hub ids (1k+ edges)
        return cur.execute(q, (rid, rid)).fetchall()

    def summaries(self, rids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """id -> (name, type) for many ids at once (current records preferred)."""
        out: dict[str, tuple[str, str]] = {}
        ids = list(dict.fromkeys(rids))
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = (f"SELECT id, name, type, revoked, deprecated FROM records WHERE id IN ({','.join('?' * len(chunk))}) "
                 "ORDER BY revoked DESC, deprecated DESC")
            for r in self.conn.execute(q, chunk):
                if r["name"] or r["id"] not in out:
                    out[r["id"]] = (r["name"] or "", r["type"] or "")
        return out

    def counts(self) -> dict[str, int]:
        one = lambda q: int(self.conn.execute(q).fetchone()[0])  # noqa: E731
        return {"records": one("SELECT COUNT(*) FROM records"), "ids": one("SELECT COUNT(DISTINCT id) FROM records"),
                "relations": one("SELECT COUNT(*) FROM relations"), "passages": one("SELECT COUNT(*) FROM passages")}

    def type_counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT type, COUNT(*) FROM records GROUP BY type ORDER BY 2 DESC")}

    # -- embedding cache ------------------------------------------------------------------------------
    def cached_vectors(self, model: str, hashes: Iterable[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        hs = list(hashes)
        for i in range(0, len(hs), 900):
            chunk = hs[i:i + 900]
            q = f"SELECT hash, vec FROM vectors WHERE model=? AND hash IN ({','.join('?' * len(chunk))})"
            out.update({r[0]: r[1] for r in self.conn.execute(q, [model, *chunk])})
        return out

    def put_vectors(self, model: str, items: Iterable[tuple[str, bytes]]) -> None:
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO vectors(hash, model, vec) VALUES(?,?,?)",
                          [(h, model, v) for h, v in items])

    def prune_vectors(self, model: str, keep: set[str]) -> int:
        """Drop cached vectors no current text uses (keeps the file from growing forever)."""
        stale = [r[0] for r in self.conn.execute("SELECT hash FROM vectors WHERE model=?", (model,)) if r[0] not in keep]
        with self.transaction() as c:
            c.executemany("DELETE FROM vectors WHERE hash=? AND model=?", [(h, model) for h in stale])
            c.execute("DELETE FROM vectors WHERE model<>?", (model,))
        return len(stale)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + " ..."


def relation_from_row(r: RelationRow) -> Relation:
    return Relation(r.type, r.dst, r.attributes)
