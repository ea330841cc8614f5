"""Bulk ingest in DuckDB for large homogeneous JSON-lines files (Windows flat exports, Suricata
EVE, flat Zeek JSON). The per-record Python parsers are the reference and handle everything else
(archives, mixed files, TSV, evtx, small files).

One pass per block of lines (:mod:`.blocks`: numpy splits the lines, Arrow hands them to DuckDB
without a copy per line): each line is parsed once (``json_extract_string`` with every needed path
in one call, under ``TRY`` so a broken line yields NULLs instead of failing the block), hashed
(md5 of format + line, the same event id as the Python path) and typed into the ECS columns; then
the block's rows already stored (a semi-join on the block's ids) or repeated inside it are
dropped and the rest appended. No validation pass, no insertion-order window: line numbers come
with the block. Lines without the format's key field (not JSON, not an object, another format)
go to the Python parsers, which report errors with file and line exactly as they would alone.

Same results as the Python path (a parity test compares them row for row): same ids, columns and
clock-skew rule (the median offset per host is fixed once a host has 3 samples, learnt and applied
block by block as the Python path does batch by batch). ``fields`` stays NULL (Sigma reads
``raw``, which for these flat formats holds the same keys).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from secfoundry.apps.soc.normalize import fmt_offset
from secfoundry.apps.soc.parsers import classify, windows
from secfoundry.apps.soc.schemas import RowError

MIN_BYTES = int(os.environ.get("SECFOUNDRY_SOC_FASTPATH_BYTES", 4 << 20))
SNIFF = 200
_EXT = (".json", ".jsonl", ".ndjson", ".log", ".json.gz", ".jsonl.gz", ".ndjson.gz", ".log.gz", ".eve")


def eligible(path: str) -> str | None:
    """The file's single format when the fast path applies, else None."""
    p = Path(path)
    if not p.is_file() or p.stat().st_size < MIN_BYTES or not p.name.lower().endswith(_EXT):
        return None
    import gzip

    opener = gzip.open if p.name.lower().endswith(".gz") else open
    fmts = set()
    n = 0
    try:
        with opener(p, "rb") as f:  # type: ignore[operator]
            for line in f:
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # reported with its line number by the bulk pass
                if not isinstance(obj, dict):
                    continue
                if isinstance(obj.get("winlog"), dict) or isinstance(obj.get("id"), dict):
                    return None  # nested variants: the Python parsers flatten them
                fmt = classify(obj)
                # EVE nests by design (alert, flow, http, event_types, traffic, ...: read by JSON path);
                # other nested records (ECS, Winlogbeat-like) need the Python parsers' flattening
                if fmt != "suricata" and any(isinstance(v, dict) for v in obj.values()):
                    return None
                fmts.add(fmt)
                n += 1
                if n >= SNIFF or len(fmts) > 1:
                    break
    except (orjson.JSONDecodeError, OSError, EOFError, UnicodeDecodeError):
        return None
    fmts.discard("jsonl")  # a few generic lines are handed to the Python parsers
    fmt = fmts.pop() if len(fmts) == 1 else None
    return fmt if fmt in ("windows", "suricata", "zeek") else None


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _paths(keys: list[str]) -> tuple[str, dict[str, str]]:
    lst = "[" + ", ".join(_q('$."' + k + '"') for k in keys) + "]"
    return lst, {k: f"x[{i + 1}]" for i, k in enumerate(keys)}


def _ts(expr: str) -> str:
    # ISO with zone -> UTC; numeric -> epoch seconds; naive -> taken as UTC (session TimeZone=UTC)
    return (f"CASE WHEN regexp_full_match({expr}, '[0-9]+(\\.[0-9]+)?') THEN "
            f"CAST(to_timestamp(CAST({expr} AS DOUBLE)) AS TIMESTAMP) "
            f"ELSE CAST(TRY_CAST({expr} AS TIMESTAMPTZ) AS TIMESTAMP) END")


def _nz(expr: str) -> str:
    return f"NULLIF(NULLIF({expr}, ''), '-')"


def _windows_select() -> tuple[str, str]:
    keys = ["EventID", "Channel", "Hostname", "Computer", "UtcTime", "TimeCreated", "@timestamp", "User",
            "TargetUserName", "SubjectUserName", "TargetDomainName", "SubjectDomainName", "Image", "NewProcessName",
            "ProcessName", "Application", "SourceImage", "CommandLine", "ScriptBlockText", "ProcessId", "NewProcessId",
            "ProcessID", "ProcessGuid", "SourceProcessGUID", "ParentProcessGuid", "ParentImage", "ParentProcessName",
            "SourceIp", "SourceAddress", "IpAddress", "DestinationIp", "DestAddress", "SourcePort", "IpPort",
            "DestinationPort", "DestPort", "Protocol", "Message", "EventType"]
    lst, x = _paths(keys)
    user = f"COALESCE({_nz(x['User'])}, {_nz(x['TargetUserName'])}, {_nz(x['SubjectUserName'])})"
    dom = (f"CASE WHEN {_nz(x['TargetUserName'])} IS NOT NULL THEN {_nz(x['TargetDomainName'])} "
           f"ELSE {_nz(x['SubjectDomainName'])} END")
    src = f"COALESCE({_nz(x['SourceIp'])}, {_nz(x['SourceAddress'])}, {_nz(x['IpAddress'])})"
    sel = f"""
      TRY_CAST({x['EventID']} AS INTEGER) AS eid, COALESCE({x['Channel']}, '') AS channel,
      COALESCE(NULLIF({x['Hostname']}, ''), {x['Computer']}, '') AS host,
      TRY_CAST({x['UtcTime']} AS TIMESTAMP) AS utc,
      {_ts(f"COALESCE({x['TimeCreated']}, {x['@timestamp']})")} AS exp,
      CASE WHEN {user} IS NULL THEN '' WHEN {user} NOT LIKE '%\\%' AND {dom} IS NOT NULL THEN {dom} || '\\' || {user}
           ELSE {user} END AS user_name,
      CASE WHEN {src} IN ('::1', '0.0.0.0') THEN '' ELSE COALESCE({src}, '') END AS source_ip,
      TRY_CAST(COALESCE({x['SourcePort']}, {x['IpPort']}) AS INTEGER) AS source_port,
      COALESCE({_nz(x['DestinationIp'])}, {_nz(x['DestAddress'])}, '') AS destination_ip,
      TRY_CAST(COALESCE({x['DestinationPort']}, {x['DestPort']}) AS INTEGER) AS destination_port,
      COALESCE({x['Protocol']}, '') AS network_protocol,
      TRY_CAST(COALESCE({x['ProcessId']}, {x['NewProcessId']}, {x['ProcessID']}) AS BIGINT) AS process_pid,
      COALESCE({x['ProcessGuid']}, {x['SourceProcessGUID']}, '') AS process_entity_id,
      COALESCE({x['Image']}, {x['NewProcessName']}, {x['ProcessName']}, {x['Application']}, {x['SourceImage']}, '')
        AS process_executable,
      COALESCE({x['CommandLine']}, {x['ScriptBlockText']}, '') AS process_command_line,
      COALESCE({x['ParentProcessGuid']}, '') AS process_parent_entity_id,
      COALESCE({x['ParentImage']}, {x['ParentProcessName']}, '') AS process_parent_executable,
      left(COALESCE({x['Message']}, ''), 300) AS message, COALESCE({x['EventType']}, '') AS action"""
    return lst, sel


def _maps(con: Any) -> None:
    svc = list(windows.CHANNEL_SERVICE.items())
    con.execute("CREATE OR REPLACE TEMP TABLE fp_svc(channel VARCHAR, service VARCHAR)")
    con.executemany("INSERT INTO fp_svc VALUES (?, ?)", svc)
    cats = [("sysmon", e, ",".join(c for c in (windows.SYSMON_CATEGORY.get(e, ""),
                                               windows.SYSMON_EXTRA_CATEGORY.get(e, "")) if c))
            for e in windows.SYSMON_CATEGORY]
    cats += [(s, e, c) for e, c in windows.POWERSHELL_CATEGORY.items() for s in ("powershell", "powershell-classic")]
    con.execute("CREATE OR REPLACE TEMP TABLE fp_cat(service VARCHAR, eid INTEGER, cats VARCHAR)")
    con.executemany("INSERT INTO fp_cat VALUES (?, ?, ?)", cats)


# the block's lines without their line break (the Python reader's rstrip(b"\r\n"))
_LINES = "(SELECT line, rtrim(raw, chr(13) || chr(10)) AS raw FROM blk)"


def _keys(fmt: str, paths: list[str], cols: str) -> str:
    """The narrow per-block table: line, event id and the few columns the checks need (no raw)."""
    lst = "[" + ", ".join(_q(p) for p in paths) + "]"
    return f"""SELECT line, left(md5('{fmt}' || chr(0) || raw), 16) AS event_id, {cols}
        FROM (SELECT line, raw, TRY(json_extract_string(NULLIF(raw, ''), {lst})) AS x FROM {_LINES})"""


def _full(lst: str, cols: str = "x") -> str:
    """The block's rows still in ``fp_stg`` (alias ``k``), every column extracted (alias ``s``)."""
    return (f"fp_stg k JOIN (SELECT line, raw, {cols} FROM (SELECT line, raw, "
            f"TRY(json_extract_string(NULLIF(raw, ''), {lst})) AS x FROM {_LINES})) s ON s.line = k.line")


def _stage(fmt: str, zeek_hint: str) -> tuple[str, str, str, str]:
    """(narrow SELECT over the block ``blk`` -> ``fp_stg``, predicate of lines not of ``fmt``,
    predicate of a missing timestamp, body SELECT -> the events table's columns, file name as parameter).

    Two parses of each line are cheaper than one that materializes it: the narrow table decides
    (other format, duplicates, clock skew) without copying the lines, then one INSERT reads the
    kept lines again with every path."""
    if fmt == "windows":
        lst, sel = _windows_select()
        stage = _keys("windows", ['$."EventID"', '$."Hostname"', '$."Computer"', '$."UtcTime"', '$."TimeCreated"',
                                  '$."@timestamp"'],
                      f"TRY_CAST(x[1] AS INTEGER) AS eid, COALESCE(NULLIF(x[2], ''), x[3], '') AS host, "
                      f"TRY_CAST(x[4] AS TIMESTAMP) AS utc, {_ts('COALESCE(x[5], x[6])')} AS exp")
        ts = ("CASE WHEN s.utc IS NOT NULL THEN s.utc WHEN o.off <> 0 AND s.exp IS NOT NULL "
              "THEN s.exp + to_seconds(CAST(o.off AS BIGINT)) ELSE s.exp END")
        note = ("CASE WHEN s.utc IS NOT NULL THEN '' WHEN s.exp IS NULL THEN 'missing' WHEN o.off <> 0 THEN "
                "'skew-corrected ' || (CASE WHEN o.off >= 0 THEN '+' ELSE '-' END) || "
                "CAST(CAST(floor(abs(o.off) / 3600) AS BIGINT) AS VARCHAR) || 'h' || "
                "lpad(CAST(CAST(floor((abs(o.off) % 3600) / 60) AS BIGINT) AS VARCHAR), 2, '0') || 'm' ELSE '' END")
        svc = "COALESCE(v.service, replace(split_part(lower(s.channel), '/', 1), 'microsoft-windows-', ''))"
        body = f"""SELECT k.event_id, {ts}, {note}, 'windows', {svc}, 'event',
            CASE WHEN c.cats IS NOT NULL THEN split_part(c.cats, ',', 1)
                 WHEN s.eid IN (4624, 4625, 4648, 4776) THEN 'authentication' ELSE '' END,
            s.action, COALESCE(CAST(s.eid AS VARCHAR), ''), s.host, s.user_name, s.source_ip, s.source_port,
            s.destination_ip, s.destination_port, s.network_protocol, s.process_pid, s.process_entity_id,
            s.process_executable, s.process_command_line, s.process_parent_entity_id, s.process_parent_executable,
            '', '', NULL, s.message, 'windows', COALESCE(c.cats, ''), {svc}, NULL, s.raw, ?, s.line
            FROM {_full(lst, sel)} LEFT JOIN fp_svc v ON v.channel = lower(s.channel)
            LEFT JOIN fp_cat c ON c.service = {svc} AND c.eid = s.eid LEFT JOIN fp_off o ON o.host = s.host"""
        # no EventID: not a Windows record
        return stage, "eid IS NULL", "utc IS NULL AND exp IS NULL", body
    if fmt == "suricata":
        keys = ["event_type", "timestamp", "src_ip", "src_port", "dest_ip", "dest_port", "proto", "app_proto",
                "alert.signature_id", "alert.signature", "alert.category", "alert.severity", "alert.action", "host"]
        paths = "[" + ", ".join(_q("$." + k) for k in keys) + "]"
        x = {k: f"x[{i + 1}]" for i, k in enumerate(keys)}
        al = f"{x['event_type']} = 'alert'"
        stage = _keys("suricata", ["$.event_type", "$.timestamp"], f"x[1] AS key, {_ts('x[2]')} AS tsv")
        tsx = _ts(x["timestamp"])
        body = f"""SELECT k.event_id, {tsx}, CASE WHEN {tsx} IS NULL THEN 'missing' ELSE '' END, 'suricata',
            'suricata.' || COALESCE({x['event_type']}, ''), CASE WHEN {al} THEN 'alert' ELSE 'event' END,
            CASE WHEN {al} THEN COALESCE({x['alert.category']}, '') WHEN {x['event_type']} IN ('flow', 'netflow')
                 THEN 'network' ELSE COALESCE({x['event_type']}, '') END,
            CASE WHEN {al} THEN COALESCE({x['alert.action']}, '') ELSE COALESCE({x['event_type']}, '') END,
            CASE WHEN {al} THEN COALESCE({x['alert.signature_id']}, '') ELSE '' END, COALESCE({x['host']}, ''), '',
            COALESCE({x['src_ip']}, ''), TRY_CAST({x['src_port']} AS INTEGER), COALESCE({x['dest_ip']}, ''),
            TRY_CAST({x['dest_port']} AS INTEGER), lower(COALESCE({x['app_proto']}, {x['proto']}, '')), NULL, '', '', '',
            '', '', CASE WHEN {al} THEN 'suricata:' || COALESCE({x['alert.signature_id']}, '') ELSE '' END,
            CASE WHEN {al} THEN COALESCE({x['alert.signature']}, '') ELSE '' END,
            CASE WHEN {al} THEN TRY_CAST({x['alert.severity']} AS INTEGER) END,
            left(CASE WHEN {al} THEN COALESCE({x['alert.signature']}, '') ELSE '' END, 300), 'suricata',
            COALESCE({x['event_type']}, ''), COALESCE({x['event_type']}, ''), NULL, raw, ?, s.line FROM {_full(paths)}"""
        return stage, "key IS NULL", "tsv IS NULL", body  # no event_type: not EVE
    keys = ["_path", "ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "note", "msg", "src", "dst", "p",
            "service", "proto", "query", "host", "server_name", "uri", "user", "username", "_system_name"]
    lst, x = _paths(keys)
    stage = _keys("zeek", ['$."ts"'], f"x[1] AS key, {_ts('x[1]')} AS tsv")
    path_e = f"COALESCE(NULLIF({x['_path']}, ''), {_q(zeek_hint)})"
    notice = f"({path_e} = 'notice' OR ({x['note']} IS NOT NULL AND {x['msg']} IS NOT NULL))"
    path2 = f"CASE WHEN {notice} THEN 'notice' ELSE {path_e} END"
    tsx = _ts(x["ts"])
    body = f"""SELECT k.event_id, {tsx}, CASE WHEN {tsx} IS NULL THEN 'missing' ELSE '' END, 'zeek',
        CASE WHEN {path2} <> '' THEN 'zeek.' || {path2} ELSE 'zeek' END,
        CASE WHEN {notice} THEN 'alert' ELSE 'event' END, CASE WHEN {path2} = 'conn' THEN 'network' ELSE {path2} END,
        CASE WHEN {notice} THEN COALESCE({x['note']}, '') ELSE {path2} END,
        CASE WHEN {notice} THEN COALESCE({x['note']}, '') ELSE '' END, COALESCE({x['_system_name']}, ''),
        COALESCE({x['user']}, {x['username']}, ''), COALESCE({x['id.orig_h']}, {x['src']}, ''),
        TRY_CAST({x['id.orig_p']} AS INTEGER), COALESCE({x['id.resp_h']}, {x['dst']}, ''),
        TRY_CAST(COALESCE({x['id.resp_p']}, {x['p']}) AS INTEGER), lower(COALESCE({x['service']}, {x['proto']}, '')),
        NULL, '', '', '', '', '', CASE WHEN {notice} THEN 'zeek:' || COALESCE({x['note']}, '') ELSE '' END,
        CASE WHEN {notice} THEN COALESCE({x['note']}, '') ELSE '' END, NULL,
        left(CASE WHEN {notice} THEN COALESCE({x['msg']}, '') ELSE COALESCE({x['query']}, {x['host']},
             {x['server_name']}, {x['uri']}, {x['service']}, '') END, 300),
        'zeek', CASE WHEN {path2} = 'dns' THEN 'dns' ELSE '' END, {path2}, NULL, raw, ?, s.line FROM {_full(lst)}"""
    return stage, "key IS NULL", "tsv IS NULL", body  # no ts: not Zeek


def _learn_skew(con: Any) -> None:
    """Samples (Sysmon UtcTime - exporter clock) of this block; hosts reaching 3 samples get their
    offset fixed (median if >= 60 s and 80% of samples agree within 60 s, else 0), as in the Python path."""
    con.execute("INSERT INTO fp_skew SELECT host, epoch(utc) - epoch(exp) FROM fp_stg "
                "WHERE utc IS NOT NULL AND exp IS NOT NULL")
    con.execute("""INSERT INTO fp_off
        WITH d AS (SELECT * FROM fp_skew WHERE host NOT IN (SELECT host FROM fp_off)),
             m AS (SELECT host, median(dt) AS med, count(*) AS n FROM d GROUP BY host HAVING count(*) >= 3)
        SELECT m.host, CASE WHEN abs(m.med) >= 60 AND sum(CASE WHEN abs(d.dt - m.med) <= 60 THEN 1 ELSE 0 END)
                                 >= 0.8 * m.n THEN round(m.med) ELSE 0 END
        FROM m JOIN d USING (host) GROUP BY m.host, m.med, m.n""")
    for host, n in con.execute("SELECT s.host, count(*) FROM fp_stg s JOIN fp_off o ON o.host = s.host "
                               "WHERE s.utc IS NULL AND s.exp IS NOT NULL AND o.off <> 0 GROUP BY s.host").fetchall():
        con.execute("INSERT INTO fp_fixed VALUES (?, ?)", [host, n])


def _skew_notes(con: Any) -> list[str]:
    from datetime import timedelta

    rows = con.execute("""SELECT o.host, o.off, (SELECT count(*) FROM fp_skew k WHERE k.host = o.host),
        (SELECT COALESCE(sum(n), 0) FROM fp_fixed f WHERE f.host = o.host) FROM fp_off o WHERE o.off <> 0
        ORDER BY o.host""").fetchall()
    return [f"host {host or '?'}: exporter timestamps differ from Sysmon UtcTime by "
            f"{fmt_offset(timedelta(seconds=off))} (median of {n} events); {cnt} events without UtcTime shifted to UTC"
            for host, off, n, cnt in rows]


def ingest_file(store: Any, path: str, fmt: str, name: str, zeek_hint: str = "") -> dict[str, Any]:
    """Returns {read, inserted, duplicates, missing, errors: [RowError], python_rows: [(line, raw)], notes}."""
    import pyarrow as pa

    from secfoundry.apps.soc.blocks import iter_blocks, prefetch

    con = store.con
    con.execute("SET TimeZone='UTC'")
    stage, not_mine, ts_null, body = _stage(fmt, zeek_hint)
    if fmt == "windows":
        _maps(con)
    con.execute("CREATE OR REPLACE TEMP TABLE fp_skew(host VARCHAR, dt DOUBLE)")
    con.execute("CREATE OR REPLACE TEMP TABLE fp_off(host VARCHAR, off DOUBLE)")
    con.execute("CREATE OR REPLACE TEMP TABLE fp_fixed(host VARCHAR, n BIGINT)")
    errors: list[RowError] = []
    others: list[tuple[int, str]] = []
    read = inserted = missing = 0
    con.execute("BEGIN TRANSACTION")
    try:
        for blk_ in prefetch(iter_blocks(path, name)):
            errors += blk_.errors
            if blk_.table is None:
                continue
            # several record batches: DuckDB scans an Arrow table one batch per thread
            con.register("blk", pa.Table.from_batches(blk_.table.to_batches(max_chunksize=4096)))
            con.execute(f"CREATE OR REPLACE TEMP TABLE fp_stg AS {stage}")
            if con.execute(f"SELECT count(*) FROM fp_stg WHERE {not_mine}").fetchall()[0][0]:
                others += con.execute(f"SELECT l.line, l.raw FROM {_LINES} l JOIN fp_stg k ON k.line = l.line "
                                      f"WHERE k.{not_mine} AND length(trim(l.raw)) > 0 ORDER BY l.line").fetchall()
                con.execute(f"DELETE FROM fp_stg WHERE {not_mine}")
            if fmt == "windows":
                _learn_skew(con)
            n, miss = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {ts_null}) FROM fp_stg").fetchall()[0]
            read += n
            # already stored (semi-join: the block's ids probe the events table), then repeats inside the block
            con.execute("DELETE FROM fp_stg WHERE event_id IN (SELECT event_id FROM events "
                        "WHERE event_id IN (SELECT event_id FROM fp_stg))")
            if con.execute("SELECT count(*) - count(DISTINCT event_id) FROM fp_stg").fetchall()[0][0]:
                con.execute("""DELETE FROM fp_stg USING (SELECT event_id, min(line) AS m FROM fp_stg GROUP BY event_id
                    HAVING count(*) > 1) d WHERE fp_stg.event_id = d.event_id AND fp_stg.line > d.m""")
            k = con.execute("SELECT count(*) FROM fp_stg").fetchall()[0][0]
            if k:
                con.execute(f"INSERT INTO events {body}", [name])
            inserted += k
            missing += miss
        notes = _skew_notes(con) if fmt == "windows" else []
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for t in ("fp_stg", "fp_skew", "fp_off", "fp_fixed"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
        con.execute("DROP VIEW IF EXISTS blk")
    return {"read": read, "inserted": inserted, "duplicates": read - inserted, "missing": missing, "errors": errors,
            "python_rows": others, "notes": notes}
