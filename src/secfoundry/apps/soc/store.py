"""The SOC event store: one DuckDB file under ``SECFOUNDRY_HOME/soc/`` (or ``SECFOUNDRY_SOC_DB``).

Tables: ``events`` (ECS-named columns + ``fields`` JSON for Sigma + ``raw``), ``ingest_errors``
(file, line, error), ``ingest_files`` (per-file counts and clock notes), ``alerts``, ``triage``
and ``cases`` (JSON documents of the pydantic schemas). Events are keyed by a stable hash, so
ingesting a file again adds nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

# python key -> (column name, DuckDB type)
COLUMNS: list[tuple[str, str, str]] = [
    ("event_id", "event_id", "VARCHAR"), ("ts", "@timestamp", "TIMESTAMP"), ("ts_note", "ts_note", "VARCHAR"),
    ("format", "format", "VARCHAR"), ("dataset", "event.dataset", "VARCHAR"), ("kind", "event.kind", "VARCHAR"),
    ("category", "event.category", "VARCHAR"), ("action", "event.action", "VARCHAR"),
    ("code", "event.code", "VARCHAR"), ("host_name", "host.name", "VARCHAR"), ("user_name", "user.name", "VARCHAR"),
    ("source_ip", "source.ip", "VARCHAR"), ("source_port", "source.port", "INTEGER"),
    ("destination_ip", "destination.ip", "VARCHAR"), ("destination_port", "destination.port", "INTEGER"),
    ("network_protocol", "network.protocol", "VARCHAR"), ("process_pid", "process.pid", "BIGINT"),
    ("process_entity_id", "process.entity_id", "VARCHAR"), ("process_executable", "process.executable", "VARCHAR"),
    ("process_command_line", "process.command_line", "VARCHAR"),
    ("process_parent_entity_id", "process.parent.entity_id", "VARCHAR"),
    ("process_parent_executable", "process.parent.executable", "VARCHAR"),
    ("rule_id", "rule.id", "VARCHAR"), ("rule_name", "rule.name", "VARCHAR"), ("severity", "event.severity", "INTEGER"),
    ("message", "message", "VARCHAR"), ("log_product", "log_product", "VARCHAR"),
    ("log_category", "log_category", "VARCHAR"), ("log_service", "log_service", "VARCHAR"),
    ("fields", "fields", "VARCHAR"), ("raw", "raw", "VARCHAR"), ("file", "file", "VARCHAR"), ("line", "line", "BIGINT"),
]
KEY_TO_COL = {k: c for k, c, _ in COLUMNS}
COL_TO_KEY = {c: k for k, c, _ in COLUMNS}

def _pa(name: str) -> Any:
    import pyarrow as pa

    return {"VARCHAR": pa.string, "TIMESTAMP": lambda: pa.timestamp("us"), "INTEGER": pa.int32,
            "BIGINT": pa.int64}[name]


class _PATypes(dict):
    def __missing__(self, key: str) -> Any:
        self[key] = _pa(key)
        return self[key]


_PA_TYPES = _PATypes()

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS events(" + ", ".join(f'"{c}" {t}' for _, c, t in COLUMNS) + ")",
    """CREATE TABLE IF NOT EXISTS ingest_errors(file VARCHAR, line BIGINT, error VARCHAR, snippet VARCHAR,
       ingested_at TIMESTAMP DEFAULT current_timestamp)""",
    """CREATE TABLE IF NOT EXISTS ingest_files(file VARCHAR, format VARCHAR, read BIGINT, inserted BIGINT,
       duplicates BIGINT, errors BIGINT, missing_timestamps BIGINT, notes VARCHAR,
       ingested_at TIMESTAMP DEFAULT current_timestamp)""",
    "CREATE TABLE IF NOT EXISTS alerts(alert_id VARCHAR PRIMARY KEY, source VARCHAR, doc JSON)",
    "CREATE TABLE IF NOT EXISTS triage(alert_id VARCHAR PRIMARY KEY, doc JSON)",
    "CREATE TABLE IF NOT EXISTS cases(id VARCHAR PRIMARY KEY, doc JSON)",
]


def default_db() -> Path:
    env = os.environ.get("SECFOUNDRY_SOC_DB")
    if env:
        return Path(env).expanduser()
    from secfoundry.core.paths import cache_dir

    return cache_dir("soc") / "soc.duckdb"


class Store:
    def __init__(self, path: str | os.PathLike[str] | None = None, *, memory_limit: str | None = None,
                 threads: int | None = None):
        import duckdb

        self.path = Path(path) if path else default_db()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path))
        self.con.execute(f"SET memory_limit='{memory_limit or os.environ.get('SECFOUNDRY_SOC_MEMORY', '2GB')}'")
        if threads or os.environ.get("SECFOUNDRY_SOC_THREADS"):
            self.con.execute(f"SET threads={int(threads or os.environ['SECFOUNDRY_SOC_THREADS'])}")
        self.con.execute("SET preserve_insertion_order=false")
        # zstd for the stored columns: the raw records (most of the bytes) compress ~10x and it costs
        # less CPU at commit than the default analysis (dictionary/FSST candidates on every string column).
        self.con.execute(f"SET force_compression='{os.environ.get('SECFOUNDRY_SOC_COMPRESSION', 'zstd')}'")
        for stmt in _SCHEMA:
            self.con.execute(stmt)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- events ---------------------------------------------------------------------------------------
    def insert_events(self, rows: list[dict[str, Any]]) -> int:
        """Insert rows not already stored (by ``event_id``); returns how many were new."""
        if not rows:
            return 0
        import pyarrow as pa

        first: dict[str, dict[str, Any]] = {}
        for r in rows:
            first.setdefault(r["event_id"], r)
        uniq = list(first.values())
        arrays = []
        for k, c, t in COLUMNS:
            dflt = "" if t == "VARCHAR" and k not in ("raw", "file") else None
            vals = [r.get(k, dflt) for r in uniq]
            arrays.append(pa.array(vals, type=_PA_TYPES[t]()))
        self.con.register("ev_batch", pa.Table.from_arrays(arrays, names=[c for _, c, _ in COLUMNS]))
        before = self.count()
        try:
            self.con.execute("INSERT INTO events SELECT b.* FROM ev_batch b WHERE b.event_id NOT IN "
                             "(SELECT event_id FROM events WHERE event_id IN (SELECT event_id FROM ev_batch))")
        finally:
            self.con.unregister("ev_batch")
        return self.count() - before

    def count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM events").fetchall()[0][0])

    def add_errors(self, errors: Iterable[tuple[str, int, str, str]]) -> None:
        errs = list(errors)
        if errs:
            self.con.executemany("INSERT INTO ingest_errors(file, line, error, snippet) VALUES (?, ?, ?, ?)", errs)

    def add_file(self, rep: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO ingest_files(file, format, read, inserted, duplicates, errors, missing_timestamps, notes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [rep["file"], rep["format"], rep["read"], rep["inserted"], rep["duplicates"], rep["errors"],
             rep["missing_timestamps"], json.dumps(rep.get("skew_notes", []))])

    def events(self, ids: Iterable[str], columns: str = "*") -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return []
        cur = self.con.execute(f"SELECT {columns} FROM events WHERE event_id IN (SELECT unnest(?))", [ids])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return set()
        return {r[0] for r in self.con.execute(
            "SELECT event_id FROM events WHERE event_id IN (SELECT unnest(?))", [ids]).fetchall()}

    # -- documents ------------------------------------------------------------------------------------
    def put_docs(self, table: str, key: str, docs: list[tuple[str, str] | tuple[str, str, str]]) -> None:
        assert table in ("alerts", "triage", "cases")
        if not docs:
            return
        import pyarrow as pa

        last = {d[0]: d for d in docs}  # one row per key (the last), as row-by-row REPLACE would leave
        cols = list(zip(*last.values()))
        # one statement for all rows (executemany costs a round trip per row: seconds for thousands of alerts)
        self.con.register("doc_batch", pa.table({f"c{i}": pa.array(list(c), pa.string()) for i, c in enumerate(cols)}))
        try:
            self.con.execute(f"INSERT OR REPLACE INTO {table} SELECT * FROM doc_batch")
        finally:
            self.con.unregister("doc_batch")

    def docs(self, table: str) -> list[dict[str, Any]]:
        assert table in ("alerts", "triage", "cases")
        return [json.loads(r[0]) for r in self.con.execute(f"SELECT doc FROM {table} ORDER BY 1").fetchall()]

    def clear(self, table: str) -> None:
        assert table in ("alerts", "triage", "cases")
        self.con.execute(f"DELETE FROM {table}")
