"""Per-case timeline: the case's alert events plus the context events of its process trees,
in UTC, deduplicated (same time, host and summary -> one line listing all event ids), ordered.
"""

from __future__ import annotations

from typing import Any

from secfoundry.apps.soc.normalize import basename
from secfoundry.apps.soc.schemas import Alert, Case, TimelineEntry
from secfoundry.apps.soc.store import Store

MAX_ENTRIES = 400


def summarize(ev: dict[str, Any]) -> str:
    """A short, factual line for an event (no free text beyond clipped field values)."""
    code, ds = ev.get("event.code") or "", ev.get("event.dataset") or ""
    exe = basename(ev.get("process.executable") or "")
    cmd = (ev.get("process.command_line") or "").replace("\n", " ").strip()
    if ev.get("event.kind") == "alert" and ev.get("rule.name"):
        s = f"{ds} alert: {ev['rule.name']}"
    elif cmd and exe:
        parent = basename(ev.get("process.parent.executable") or "")
        s = f"{ds} {code}: {exe}" + (f" (parent {parent})" if parent else "") + f": {cmd[:160]}"
    elif exe:
        s = f"{ds} {code}: {exe}"
    else:
        s = f"{ds} {code} {ev.get('message') or ''}".strip()[:200]
    s = " ".join(s.split())  # one line: messages carry CR/LF/tabs
    src, dst = ev.get("source.ip") or "", ev.get("destination.ip") or ""
    if src or dst:
        s += f" [{src or '?'} -> {dst or '?'}]"
    return s


def build_timeline(store: Store, case: Case, alerts: dict[str, Alert]) -> list[TimelineEntry]:
    ev_alerts: dict[str, list[str]] = {}
    for aid in case.alerts:
        a = alerts.get(aid)
        if a is None:
            continue
        for e in a.event_ids:
            ev_alerts.setdefault(e, []).append(aid)
    cols = ('event_id, "@timestamp", "host.name", "event.code", "event.dataset", "event.kind", "rule.name", '
            '"process.executable", "process.parent.executable", "process.command_line", "source.ip", '
            '"destination.ip", message')
    events = store.events(list(ev_alerts), cols)
    merged: dict[tuple[Any, str, str], TimelineEntry] = {}
    for ev in events:
        summary = summarize(ev)
        key = (ev["@timestamp"], ev.get("host.name") or "", summary)
        ent = merged.get(key)
        if ent is None:
            merged[key] = TimelineEntry(time=ev["@timestamp"], event_ids=[ev["event_id"]], host=key[1],
                                        summary=summary, alert_ids=list(ev_alerts.get(ev["event_id"], [])))
        else:
            ent.event_ids.append(ev["event_id"])
            ent.alert_ids = list(dict.fromkeys(ent.alert_ids + ev_alerts.get(ev["event_id"], [])))
    out = sorted(merged.values(), key=lambda t: (t.time is None, t.time or 0, t.summary))
    for t in out:
        t.event_ids.sort()
    return out[:MAX_ENTRIES]
