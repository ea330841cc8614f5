"""Rendered ``kb show`` entries, materialised at sync time.

Building an entry reads every relation of its id; for hub ids (CM-6, T1105, CWE-20) that is thousands
of edges and 20-90 ms of one core, and the service's first look-up of such an id used to pay it
while holding the GIL. After a sync the KB renders every record id once (the full KB: 23.9k ids,
~11 CPU-s, 28 MB zlib-compressed) into the ``rendered`` table, keyed by canonical id, and stamps it
with what it was rendered from (``stamp``): the sources' content hashes and sync runs, the store
schema, and the code that decides the bytes (``show.py`` and the encoder here). A look-up whose stamp no longer matches (a
sync not followed by a render, a newer secfoundry) is simply built again, so a stale body is never
served. The bytes are exactly ``json.dumps(dataclasses.asdict(entry), ensure_ascii=False,
default=str)``, i.e. what ``kb show --json`` prints (a test checks every id of a test KB).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import sqlite3
import time
import zlib
from pathlib import Path
from typing import Any, Callable

from secfoundry.kb.store import SCHEMA_VERSION, Store

STAMP_KEY = "rendered_stamp"
_BATCH = 500


def _plain(o: Any) -> Any:
    """``json.dumps`` hook giving the bytes of ``json.dumps(dataclasses.asdict(entry), default=str)``
    without asdict's recursive deep copy (most of the CPU of rendering a busy entry): a dataclass
    becomes the dict of its fields in field order (the encoder recurses into it), anything else JSON
    cannot encode its ``str``, as the CLI's ``default=str``."""
    fields = getattr(type(o), "__dataclass_fields__", None)
    if fields is not None and not isinstance(o, type):
        return {name: getattr(o, name) for name, f in fields.items() if f._field_type is dataclasses._FIELD}  # type: ignore[attr-defined]
    return str(o)


def entry_json(entry: Any) -> bytes:
    """The UTF-8 JSON of an entry (or any dataclass/JSON value) as ``kb show --json`` prints it."""
    return json.dumps(entry, ensure_ascii=False, default=_plain).encode("utf-8")


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    """The code that decides the bytes: ``show.py`` (the entry) and the encoder below."""
    import inspect

    from secfoundry.kb import show

    h = hashlib.sha256(Path(show.__file__).read_bytes())
    for fn in (_plain, entry_json):
        h.update(inspect.getsource(fn).encode())
    return h.hexdigest()[:16]


def stamp(conn: sqlite3.Connection) -> str:
    """What the rendered bodies depend on: every source's content hash and sync run, the schema and
    the rendering code. Reads the small ``sources`` table only."""
    rows = conn.execute("SELECT name, content_hash, run_id, last_sync, status FROM sources ORDER BY name").fetchall()
    h = hashlib.sha256(f"schema={SCHEMA_VERSION}\ncode={_code_hash()}\n".encode())
    for r in rows:
        h.update(("\t".join("" if v is None else str(v) for v in tuple(r)) + "\n").encode())
    return h.hexdigest()


def is_current(conn: sqlite3.Connection) -> bool:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (STAMP_KEY,)).fetchone()
    except sqlite3.OperationalError:  # a store from before this table: nothing rendered
        return False
    return bool(row) and row[0] == stamp(conn)


def lookup(conn: sqlite3.Connection, id: str) -> bytes | None:
    """The rendered JSON of canonical ``id``, or None (not rendered, or no such table). The caller
    checks ``is_current`` first (once per KB change, not per call)."""
    try:
        row = conn.execute("SELECT body FROM rendered WHERE id=?", (id,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return zlib.decompress(row[0]) if row else None


@dataclasses.dataclass
class RenderStats:
    ids: int = 0
    bytes_json: int = 0
    bytes_stored: int = 0
    seconds: float = 0.0
    skipped: bool = False  # already current


def render_all(store: Store, *, force: bool = False,
               progress: Callable[[int, int], None] | None = None) -> RenderStats:
    """(Re)render every record id into ``rendered`` in one transaction and stamp it."""
    from secfoundry.kb.show import build_entry

    t0 = time.time()
    stats = RenderStats()
    current = stamp(store.conn)
    if not force and store.get_meta(STAMP_KEY) == current:
        stats.skipped = True
        return stats
    ids = [r[0] for r in store.conn.execute("SELECT DISTINCT id FROM records ORDER BY id")]
    total = len(ids)
    with store.transaction() as conn:
        conn.execute("DELETE FROM rendered")
        batch: list[tuple[str, bytes]] = []
        for i, rid in enumerate(ids, 1):
            entry = build_entry(store, rid)
            if entry is None or entry.id != rid or entry.query:
                continue  # not addressable under its own id (should not happen for a record id)
            body = entry_json(entry)
            packed = zlib.compress(body, 1)
            stats.bytes_json += len(body)
            stats.bytes_stored += len(packed)
            batch.append((rid, packed))
            if len(batch) >= _BATCH:
                conn.executemany("INSERT OR REPLACE INTO rendered(id, body) VALUES(?, ?)", batch)
                batch.clear()
            if progress and (i % _BATCH == 0 or i == total):
                progress(i, total)
        if batch:
            conn.executemany("INSERT OR REPLACE INTO rendered(id, body) VALUES(?, ?)", batch)
        conn.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (STAMP_KEY, current))
    stats.ids = total
    stats.seconds = time.time() - t0
    return stats
