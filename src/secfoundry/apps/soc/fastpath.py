"""Bulk ingest in DuckDB for large homogeneous JSON-lines files (Windows flat exports, Suricata
EVE, flat Zeek JSON): DuckDB reads the lines, checks them, extracts the ECS columns, corrects the
clock skew and deduplicates in SQL (C++, all cores) — the per-record Python parsers are the
reference and handle everything else (archives, mixed files, TSV, evtx, small files).

Same results as the Python path: same event ids (md5 of format + raw line), same columns, same
skew rule; lines of another format inside the file are handed to the Python parsers; invalid
lines become errors with their line number. ``fields`` stays NULL (Sigma reads ``raw``, which for
these flat formats holds the same keys).
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
                if not isinstance(obj, dict) or any(isinstance(v, dict) for k, v in obj.items()
                                                    if k not in ("alert", "flow", "http", "dns", "tls", "metadata",
                                                                 "fileinfo", "ssh", "smtp", "email", "stats",
                                                                 "anomaly", "dhcp", "tcp", "netflow")):
                    return None
                fmts.add(classify(obj))
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


def _others(con: Any, not_mine: str) -> list[tuple[int, str]]:
    rows = con.execute(f"SELECT line, raw FROM fp_stg WHERE {not_mine} ORDER BY line").fetchall()
    if rows:
        con.execute(f"DELETE FROM fp_stg WHERE {not_mine}")
    return rows


def ingest_file(store: Any, path: str, fmt: str, name: str, zeek_hint: str = "") -> dict[str, Any]:
    """Returns {read, inserted, duplicates, missing, errors: [RowError], python_rows: [(line, raw)], notes}."""
    con = store.con
    con.execute("SET preserve_insertion_order=true")
    con.execute("SET TimeZone='UTC'")
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE fp_lines AS SELECT row_number() OVER () AS line, raw FROM "
                    "read_csv(?, columns={'raw': 'VARCHAR'}, header=false, delim=?, quote='', escape='', "
                    "auto_detect=false, strict_mode=false, null_padding=true)", [path, chr(1)])
    finally:
        con.execute("SET preserve_insertion_order=false")
    con.execute("CREATE OR REPLACE TEMP TABLE fp_ok AS SELECT line, raw, CASE WHEN raw IS NULL OR trim(raw) = '' "
                "THEN 'EMPTY' WHEN json_valid(raw) THEN json_type(raw) ELSE 'INVALID' END AS jt FROM fp_lines")
    con.execute("DROP TABLE fp_lines")
    bad = con.execute("SELECT line, left(raw, 120) FROM fp_ok WHERE jt NOT IN ('EMPTY', 'OBJECT') ORDER BY line"
                      ).fetchall()
    errors = [RowError(file=name, line=int(n), error="not JSON (or not a JSON object)", snippet=s or "")
              for n, s in bad]
    con.execute("DELETE FROM fp_ok WHERE jt <> 'OBJECT'")
    # Rows without the format's key field (found in the same extraction as the columns) are another
    # format and go to the Python parsers.
    notes: list[str] = []
    if fmt == "windows":
        _maps(con)
        lst, sel = _windows_select()
        con.execute(f"""CREATE OR REPLACE TEMP TABLE fp_stg AS
            SELECT line, raw, md5('windows' || chr(0) || raw)[1:16] AS event_id, {sel}
            FROM (SELECT line, raw, json_extract_string(raw, {lst}) AS x FROM fp_ok)""")
        others = _others(con, "eid IS NULL")  # no EventID: not a Windows record
        con.execute("""CREATE OR REPLACE TEMP TABLE fp_off AS
            WITH d AS (SELECT host, epoch(utc) - epoch(exp) AS dt FROM fp_stg WHERE utc IS NOT NULL AND exp IS NOT NULL),
                 m AS (SELECT host, median(dt) AS med, count(*) AS n FROM d GROUP BY host)
            SELECT m.host, round(m.med) AS off, m.n FROM m JOIN d USING (host) GROUP BY m.host, m.med, m.n
            HAVING m.n >= 3 AND abs(m.med) >= 60 AND sum(CASE WHEN abs(d.dt - m.med) <= 60 THEN 1 ELSE 0 END) >= 0.8 * m.n""")
        ts = ("CASE WHEN s.utc IS NOT NULL THEN s.utc WHEN o.off IS NOT NULL AND s.exp IS NOT NULL "
              "THEN s.exp + to_seconds(CAST(o.off AS BIGINT)) ELSE s.exp END")
        note = ("CASE WHEN s.utc IS NOT NULL THEN '' WHEN s.exp IS NULL THEN 'missing' WHEN o.off IS NOT NULL THEN "
                "'skew-corrected ' || (CASE WHEN o.off >= 0 THEN '+' ELSE '-' END) || "
                "CAST(CAST(floor(abs(o.off) / 3600) AS BIGINT) AS VARCHAR) || 'h' || "
                "lpad(CAST(CAST(floor((abs(o.off) % 3600) / 60) AS BIGINT) AS VARCHAR), 2, '0') || 'm' ELSE '' END")
        svc = ("COALESCE(v.service, replace(split_part(lower(s.channel), '/', 1), 'microsoft-windows-', ''))")
        body = f"""SELECT s.event_id, {ts}, {note}, 'windows', {svc}, 'event',
            CASE WHEN c.cats IS NOT NULL THEN split_part(c.cats, ',', 1)
                 WHEN s.eid IN (4624, 4625, 4648, 4776) THEN 'authentication' ELSE '' END,
            s.action, COALESCE(CAST(s.eid AS VARCHAR), ''), s.host, s.user_name, s.source_ip, s.source_port,
            s.destination_ip, s.destination_port, s.network_protocol, s.process_pid, s.process_entity_id,
            s.process_executable, s.process_command_line, s.process_parent_entity_id, s.process_parent_executable,
            '', '', NULL, s.message, 'windows', COALESCE(c.cats, ''), {svc}, NULL, s.raw, ?, s.line
            FROM fp_stg s LEFT JOIN fp_svc v ON v.channel = lower(s.channel)
            LEFT JOIN fp_cat c ON c.service = {svc} AND c.eid = s.eid LEFT JOIN fp_off o ON o.host = s.host"""
        for host, off, n in con.execute("SELECT host, off, n FROM fp_off ORDER BY host").fetchall():
            from datetime import timedelta

            cnt = con.execute("SELECT count(*) FROM fp_stg WHERE host = ? AND utc IS NULL AND exp IS NOT NULL",
                              [host]).fetchone()[0]
            notes.append(f"host {host or '?'}: exporter timestamps differ from Sysmon UtcTime by "
                         f"{fmt_offset(timedelta(seconds=off))} (median of {n} events); {cnt} events without "
                         "UtcTime shifted to UTC")
    elif fmt == "suricata":
        keys = ["event_type", "timestamp", "src_ip", "src_port", "dest_ip", "dest_port", "proto", "app_proto",
                "alert.signature_id", "alert.signature", "alert.category", "alert.severity", "alert.action", "host"]
        paths = "[" + ", ".join(_q("$." + k) for k in keys) + "]"
        x = {k: f"x[{i + 1}]" for i, k in enumerate(keys)}
        al = f"{x['event_type']} = 'alert'"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE fp_stg AS SELECT line, raw, md5('suricata' || chr(0) || raw)[1:16]
            AS event_id, x FROM (SELECT line, raw, json_extract_string(raw, {paths}) AS x FROM fp_ok)""")
        others = _others(con, "x[1] IS NULL")  # no event_type: not EVE
        tsx = _ts(x["timestamp"])
        body = f"""SELECT event_id, {tsx}, CASE WHEN {tsx} IS NULL THEN 'missing' ELSE '' END, 'suricata',
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
            COALESCE({x['event_type']}, ''), COALESCE({x['event_type']}, ''), NULL, raw, ?, line FROM fp_stg"""
    else:  # zeek (flat JSON)
        keys = ["_path", "ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "note", "msg", "src", "dst", "p",
                "service", "proto", "query", "host", "server_name", "uri", "user", "username", "_system_name"]
        lst, x = _paths(keys)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE fp_stg AS SELECT line, raw, md5('zeek' || chr(0) || raw)[1:16]
            AS event_id, x FROM (SELECT line, raw, json_extract_string(raw, {lst}) AS x FROM fp_ok)""")
        others = _others(con, "x[2] IS NULL")  # no ts: not Zeek
        path_e = f"COALESCE(NULLIF({x['_path']}, ''), {_q(zeek_hint)})"
        notice = f"({path_e} = 'notice' OR ({x['note']} IS NOT NULL AND {x['msg']} IS NOT NULL))"
        path2 = f"CASE WHEN {notice} THEN 'notice' ELSE {path_e} END"
        tsx = _ts(x["ts"])
        body = f"""SELECT event_id, {tsx}, CASE WHEN {tsx} IS NULL THEN 'missing' ELSE '' END, 'zeek',
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
            'zeek', CASE WHEN {path2} = 'dns' THEN 'dns' ELSE '' END, {path2}, NULL, raw, ?, line FROM fp_stg"""
    read = con.execute("SELECT count(*) FROM fp_stg").fetchone()[0]
    before = store.count()
    con.execute(f"""INSERT INTO events SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER
        (PARTITION BY event_id ORDER BY line) AS rn FROM ({body}) q) b WHERE rn = 1
        AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = b.event_id)""", [name])
    inserted = store.count() - before
    missing = con.execute("SELECT count(*) FROM events WHERE file = ? AND \"@timestamp\" IS NULL", [name]).fetchone()[0]
    for t in ("fp_stg", "fp_ok", "fp_off"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return {"read": read, "inserted": inserted, "duplicates": read - inserted, "missing": missing, "errors": errors,
            "python_rows": others, "notes": notes}
