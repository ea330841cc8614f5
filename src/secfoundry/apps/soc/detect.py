"""Detection over the stored events: Sigma rules (compiled by :mod:`.rules`) + native alerts.

Sigma: rules are grouped by log source; a group whose log source has no events is skipped (and
counted). For each remaining group the events of that log source are materialized once into a
temporary table whose columns are the Sigma field names the group's rules use (extracted from
the ``fields`` JSON in one pass), then the rules run as batches of ``UNION ALL`` queries (a rule
that fails on its own is reported, never fatal). Hits are grouped per rule and host into alerts,
split where the gap between hits exceeds ``gap``.

Native alerts: Suricata ``alert`` records, Zeek notices, Wazuh alerts and ECS ``event.kind: alert``
documents, grouped per rule and (host, source, destination) the same way.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

import orjson
import xxhash

from secfoundry.apps.soc.rules import CompiledRule, RuleSet
from secfoundry.apps.soc.schemas import Alert
from secfoundry.apps.soc.sigma_backend import (CASE_PREFIX, KEYWORD_FIELD, event_codes, fold_case, keyword_json_forms,
                                               referenced_fields)
from secfoundry.apps.soc.store import Store

QUERY_BATCH = 48
MAX_EVENT_IDS = 500  # per alert; the count beyond is kept in the alert's name
# Zeek notice types -> ATT&CK (by what the Zeek policy script detects; ids checked against the KB).
ZEEK_NOTICE_TECHNIQUES = {
    "SSH::Password_Guessing": ["T1110.001"], "FTP::Bruteforcing": ["T1110.001"],
    "HTTP::SQL_Injection_Attacker": ["T1190"], "HTTP::SQL_Injection_Victim": ["T1190"],
    "Scan::Port_Scan": ["T1046"], "Scan::Address_Scan": ["T1046"], "SSH::Interesting_Hostname_Login": ["T1021.004"],
    "DNS::External_Name": [], "SSL::Invalid_Server_Cert": [], "SSL::Certificate_Expired": [],
}
_TECH = re.compile(r"\bT\d{4}(?:\.\d{3})?\b")


@dataclass
class DetectReport:
    rules_total: int = 0
    rules_run: int = 0
    rules_without_events: int = 0
    rules_failed: int = 0
    hits: int = 0
    sigma_alerts: int = 0
    native_alerts: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def routing(rule: CompiledRule) -> str | None:
    """SQL predicate selecting the events of a rule's log source, or None if we never ingest it."""
    p, c, s = rule.product, rule.category, rule.service
    q = lambda v: "'" + v.replace("'", "''") + "'"  # noqa: E731
    if p == "windows":
        if c:
            return f"log_product='windows' AND list_contains(string_split(log_category, ','), {q(c)})"
        if s:
            return f"log_product='windows' AND log_service={q(s)}"
        return "log_product='windows'"
    if p == "zeek":
        return f"log_product='zeek' AND log_service={q(s)}" if s else "log_product='zeek'"
    if p:
        parts = [f"log_product={q(p)}"] + ([f"log_service={q(s)}"] if s else []) + \
                ([f"list_contains(string_split(log_category, ','), {q(c)})"] if c else [])
        return " AND ".join(parts)
    if c == "dns":
        return "log_product='zeek' AND log_service='dns'"
    return None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _jpath(name: str) -> str:
    return "'$.\"" + name.replace("'", "''").replace('"', '\\"') + "\"'"


def _column(name: str, i: int) -> str:
    """The materialized column for a referenced name: lowercased field, case-kept copy, or ``_raw``."""
    if name == KEYWORD_FIELD:
        return f"lower(raw) AS {_ident(name)}"  # the record as stored (see sigma_backend.keyword_json_forms)
    if name.startswith(CASE_PREFIX):
        return f"x[{i}] AS {_ident(name)}"
    return f"lower(x[{i}]) AS {_ident(name)}"


def plan(ruleset: RuleSet) -> tuple[dict[tuple[str, tuple[str, ...]], list[tuple[CompiledRule, str]]], int]:
    """Rules grouped by (log-source predicate, EventIDs they require), each with its case-folded
    condition; and how many rules have a log source we never ingest."""
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[CompiledRule, str]]] = defaultdict(list)
    unrouted = 0
    for r in ruleset.rules:
        key = routing(r)
        if key is None:
            unrouted += 1
            continue
        codes = tuple(event_codes(r.condition) or ()) if r.product == "windows" else ()
        groups[(key, codes)].append((r, keyword_json_forms(fold_case(r.condition))))
    return groups, unrouted


def run_sigma(store: Store, ruleset: RuleSet, report: DetectReport, *, progress: Any = None
              ) -> dict[str, list[str]]:
    """rule id -> matching event ids.

    Per group: the group's events (log source, and the EventIDs its rules require) are read once
    into a narrow table holding, per field the rules use, its lowercased value (plus a case-kept
    copy for regular expressions, the event text for keyword rules); the rules' case-folded
    conditions then run as ``UNION ALL`` batches over it (columnar: each rule reads only its
    fields)."""
    con = store.con
    groups, _ = plan(ruleset)
    hits: dict[str, list[str]] = defaultdict(list)
    ran: set[str] = set()
    failed: set[str] = set()
    # one scan: which (log source, event code) combinations exist; a group with none is skipped
    con.execute('CREATE OR REPLACE TEMP TABLE sg_sources AS SELECT log_product, log_category, log_service, '
                '"event.code", count(*) AS n FROM events GROUP BY ALL')
    for (key, codes), rules in groups.items():
        where = key + (f' AND "event.code" IN ({", ".join(repr(c) for c in codes)})' if codes else "")
        if not con.execute(f"SELECT sum(n) FROM sg_sources WHERE {where}").fetchall()[0][0]:
            continue
        names = sorted({f for _, cond in rules for f in referenced_fields(cond)})
        base = sorted({f.removeprefix(CASE_PREFIX) for f in names if f != KEYWORD_FIELD})
        pos = {f: i + 1 for i, f in enumerate(base)}
        cols = ", ".join(_column(f, pos.get(f.removeprefix(CASE_PREFIX), 0)) for f in names)
        paths = ", ".join(_jpath(f) for f in base) or "'$.\"\"'"
        con.execute(f"CREATE OR REPLACE TEMP TABLE sg AS SELECT event_id{', ' + cols if cols else ''} FROM "
                    f"(SELECT event_id, raw, json_extract_string(doc, [{paths}]) x FROM "
                    f"(SELECT event_id, raw, COALESCE(fields, raw) AS doc FROM events WHERE {where}))")
        for i in range(0, len(rules), QUERY_BATCH):
            _run_batch(con, rules[i:i + QUERY_BATCH], hits, report, ran, failed)
            if progress:
                progress(len(rules[i:i + QUERY_BATCH]))
        con.execute("DROP TABLE IF EXISTS sg")
    con.execute("DROP TABLE IF EXISTS sg_sources")
    # counted per rule (a rule may run as two variants: Sysmon and Security audit events)
    ids = {r.id for r in ruleset.rules}
    report.rules_run = len(ran - failed)
    report.rules_failed = len(failed)
    report.rules_without_events = len(ids - ran - failed)
    return hits


def _run_batch(con: Any, rules: list[tuple[CompiledRule, str]], hits: dict[str, list[str]],
               report: DetectReport, ran: set[str], failed: set[str]) -> None:
    sql = " UNION ALL ".join(f"SELECT {i} AS r, event_id FROM sg WHERE {c}" for i, (_, c) in enumerate(rules))
    try:
        rows = con.execute(sql).fetchall()
        ran.update(r.id for r, _ in rules)
    except Exception:  # noqa: BLE001 - find the rule(s) at fault, run the rest
        rows = []
        for i, (r, c) in enumerate(rules):
            try:
                rows += [(i, e) for (e,) in con.execute(f"SELECT event_id FROM sg WHERE {c}").fetchall()]
                ran.add(r.id)
            except Exception as e:  # noqa: BLE001
                failed.add(r.id)
                report.failures.append(f"{r.id} ({r.path}{', ' + r.variant if r.variant else ''}): "
                                       f"{str(e).splitlines()[0][:200]}")
    for i, eid in rows:
        hits[rules[i][0].id].append(eid)
    report.hits += len(rows)


def _alert_id(*parts: str) -> str:
    return "a-" + xxhash.xxh3_64_hexdigest("\x00".join(parts).encode())[:12]


def _split(events: list[tuple[Any, ...]], gap: timedelta) -> Iterable[list[tuple[Any, ...]]]:
    """Events sorted by time -> runs separated by more than ``gap`` (timeless events form one run)."""
    cur: list[tuple[Any, ...]] = []
    last: datetime | None = None
    for ev in events:
        ts = ev[1]
        if cur and ts is not None and last is not None and ts - last > gap:
            yield cur
            cur = []
        cur.append(ev)
        if ts is not None:
            last = ts
    if cur:
        yield cur


def _mode(vals: Iterable[str]) -> str:
    c: dict[str, int] = defaultdict(int)
    for v in vals:
        if v:
            c[v] += 1
    return max(c.items(), key=lambda x: (x[1], x[0]))[0] if c else ""


def _make_alert(source: str, rule_id: str, name: str, level: str, techniques: list[str], tactics: list[str],
                run: list[tuple[Any, ...]]) -> Alert:
    # run rows: (event_id, ts, host, user, src, dst)
    times = [r[1] for r in run if r[1] is not None]
    ids = [r[0] for r in run]
    host = _mode(r[2] for r in run)
    return Alert(alert_id=_alert_id(rule_id, host, min(ids)), source=source, rule_id=rule_id,
                 rule_name=name if len(ids) <= MAX_EVENT_IDS else f"{name} ({len(ids)} events)", level=level,
                 techniques=techniques, tactics=tactics, event_ids=ids[:MAX_EVENT_IDS],
                 first_seen=min(times) if times else None, last_seen=max(times) if times else None,
                 host_name=host, user_name=_mode(r[3] for r in run), source_ip=_mode(r[4] for r in run),
                 destination_ip=_mode(r[5] for r in run))


_EV_COLS = 'event_id, "@timestamp", "host.name", "user.name", "source.ip", "destination.ip"'


def sigma_alerts(store: Store, ruleset: RuleSet, hits: dict[str, list[str]], gap: timedelta) -> list[Alert]:
    import pyarrow as pa

    by_id = {r.id: r for r in ruleset.rules}
    rids = sorted(hits)
    store.con.register("sg_hits", pa.table({
        "r": pa.array([i for i, rid in enumerate(rids) for _ in hits[rid]], pa.int32()),
        "event_id": pa.array([e for rid in rids for e in hits[rid]], pa.string())}))
    try:
        rows = store.con.execute(
            f"SELECT DISTINCT h.r, {', '.join('e.' + c for c in _EV_COLS.split(', '))} FROM sg_hits h JOIN events e "
            'USING (event_id) ORDER BY h.r, e."@timestamp" NULLS LAST, e.event_id').fetchall()
    finally:
        store.con.unregister("sg_hits")
    per: dict[tuple[int, str], list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        per[(row[0], row[3] or "")].append(row[1:])
    out: list[Alert] = []
    for (ri, _host), host_rows in per.items():
        r = by_id[rids[ri]]
        for run in _split(host_rows, gap):
            out.append(_make_alert("sigma", r.id, r.title, r.level, r.techniques, r.tactics, run))
    return out


def native_alerts(store: Store, gap: timedelta) -> list[Alert]:
    rows = store.con.execute(
        f'SELECT {_EV_COLS}, "rule.id", "rule.name", "event.severity", format, COALESCE(fields, raw) FROM events '
        "WHERE \"event.kind\"='alert' AND \"rule.id\" <> '' "
        'ORDER BY "rule.id", "@timestamp" NULLS LAST, event_id').fetchall()
    groups: dict[tuple[str, str, str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        groups[(row[6], row[2] or "", row[4] or "", row[5] or "")].append(row)
    out: list[Alert] = []
    for (rid, _h, _s, _d), grp in groups.items():
        first = grp[0]
        src = rid.split(":", 1)[0]
        source = {"suricata": "suricata", "zeek": "zeek", "wazuh": "wazuh"}.get(src, "ecs")
        techniques, level = _native_meta(source, rid, first[8], first[10])
        for run in _split(grp, gap):
            out.append(_make_alert(source, rid, first[7] or rid, level, techniques, [], run))
    return out


def _native_meta(source: str, rid: str, severity: int | None, fields_json: str) -> tuple[list[str], str]:
    from secfoundry.apps.soc.normalize import flatten

    f = flatten(orjson.loads(fields_json or "{}"))
    techs: list[str] = []
    if source == "wazuh":
        techs = [t for t in f.get("_mitre", []) if _TECH.fullmatch(t)]
        lv = severity or 0
        level = "critical" if lv >= 13 else "high" if lv >= 10 else "medium" if lv >= 6 else "low"
    elif source == "suricata":
        for k, v in f.items():
            if k.startswith("alert.metadata.mitre_technique_id"):
                techs += [t for t in (v if isinstance(v, list) else [v]) if _TECH.fullmatch(str(t))]
        level = {1: "high", 2: "medium", 3: "low"}.get(severity or 3, "low")
    elif source == "zeek":
        techs = ZEEK_NOTICE_TECHNIQUES.get(rid.split(":", 1)[1], [])
        level = "medium" if techs else "low"
    else:
        tid = f.get("threat.technique.id")
        techs = [t for t in (tid if isinstance(tid, list) else [tid]) if t and _TECH.fullmatch(str(t))]
        level = "medium"
    return list(dict.fromkeys(techs)), level


def detect(store: Store, ruleset: RuleSet | None, *, gap: timedelta = timedelta(hours=1), progress: Any = None
           ) -> tuple[list[Alert], DetectReport]:
    t0 = time.perf_counter()
    rep = DetectReport()
    alerts: list[Alert] = []
    if ruleset is not None:
        rep.rules_total = len({r.id for r in ruleset.rules})
        rep.skipped = dict(ruleset.skipped)
        hits = run_sigma(store, ruleset, rep, progress=progress)
        alerts = sigma_alerts(store, ruleset, hits, gap)
        rep.sigma_alerts = len(alerts)
    nat = native_alerts(store, gap)
    rep.native_alerts = len(nat)
    alerts += nat
    store.clear("alerts")
    store.put_docs("alerts", "alert_id", [(a.alert_id, a.source, a.model_dump_json()) for a in alerts])
    rep.seconds = round(time.perf_counter() - t0, 3)
    return alerts, rep
