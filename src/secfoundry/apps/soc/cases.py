"""Cases: related alerts grouped by shared entities within a time window, with the reasons.

Two alerts are linked when their activity lies within ``window`` of each other and they share a
host, a (non-built-in) user, an IP address, or a process tree (a process entity id of one is the
process or the parent of the other). Links are merged with union-find; every link that joined
two groups is kept as a sentence of the case's ``grouping``. Entities that are everywhere (an IP
shared by a large share of all alerts, a built-in account) do not link anything; alerts the
triage scored as likely false positives don't open cases on their own.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import xxhash

from secfoundry.apps.soc.enrich import KBFacts, tactic_rank
from secfoundry.apps.soc.schemas import Alert, Case, Entity, Triage
from secfoundry.apps.soc.store import Store

GENERIC_USERS = {"system", "nt authority\\system", "local service", "network service", "nt authority\\local service",
                 "nt authority\\network service", "-", "n/a", "anonymous logon", "nt authority\\anonymous logon"}
GENERIC_IPS = {"", "-", "0.0.0.0", "127.0.0.1", "::1", "::", "255.255.255.255"}
UBIQUITY = 0.5  # an entity on more than this share of alerts (and >= 20 of them) links nothing


class _UF:
    def __init__(self, n: int):
        self.p = list(range(n))

    def find(self, x: int) -> int:
        while self.p[x] != x:
            self.p[x] = self.p[self.p[x]]
            x = self.p[x]
        return x

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.p[max(ra, rb)] = min(ra, rb)
        return True


def _entities(a: Alert, procs: dict[str, set[str]]) -> list[tuple[str, str]]:
    out = []
    if a.host_name:
        out.append(("host", a.host_name.lower().split(".")[0]))
    if a.user_name and a.user_name.lower() not in GENERIC_USERS and not a.user_name.endswith("$"):
        out.append(("user", a.user_name.lower().split("\\")[-1]))
    for ip in (a.source_ip, a.destination_ip):
        if ip not in GENERIC_IPS:
            out.append(("ip", ip))
    for p in procs.get(a.alert_id, ()):
        out.append(("process", p))
    return out


def _process_ids(store: Store, alerts: list[Alert]) -> dict[str, set[str]]:
    ids = {e: a.alert_id for a in alerts for e in a.event_ids[:100]}
    out: dict[str, set[str]] = defaultdict(set)
    for ev in store.events(ids, 'event_id, "process.entity_id", "process.parent.entity_id"'):
        for k in ("process.entity_id", "process.parent.entity_id"):
            if ev.get(k):
                out[ids[ev["event_id"]]].add(ev[k].lower())
    return out


def _overlap(a: Alert, b: Alert, window: timedelta) -> bool:
    if a.first_seen is None or b.first_seen is None:
        return a.first_seen is None and b.first_seen is None
    return a.first_seen - window <= (b.last_seen or b.first_seen) and b.first_seen - window <= (a.last_seen or a.first_seen)


def build_cases(store: Store, alerts: list[Alert], triage: list[Triage], *, kb: Any = None,
                window: timedelta = timedelta(hours=2), min_score: float = 0.35) -> list[Case]:
    tri = {t.alert_id: t for t in triage}
    keep = [a for a in alerts if tri.get(a.alert_id) is None or tri[a.alert_id].score > min_score]
    keep.sort(key=lambda a: (a.first_seen is None, a.first_seen or 0, a.rule_id, a.host_name, a.alert_id))
    procs = _process_ids(store, keep)
    ents = [_entities(a, procs) for a in keep]
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for es in ents:
        for e in set(es):
            counts[e] += 1
    ubiquitous = {e for e, c in counts.items() if c >= 20 and c > UBIQUITY * len(keep) and e[0] != "host"}
    index: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, es in enumerate(ents):
        for e in set(es):
            if e not in ubiquitous:
                index[e].append(i)
    uf = _UF(len(keep))
    why: dict[int, list[str]] = defaultdict(list)  # root -> reasons (re-keyed at the end)
    edges: list[tuple[int, int, str]] = []
    for (kind, val), members in index.items():
        members.sort(key=lambda i: (keep[i].first_seen is None, keep[i].first_seen or 0))
        for x, y in zip(members, members[1:]):
            if _overlap(keep[x], keep[y], window) and uf.union(x, y):
                edges.append((x, y, f"{keep[x].alert_id} and {keep[y].alert_id} share {kind} {val}"
                                    + _gap(keep[x], keep[y])))
    for x, _y, text in edges:
        why[uf.find(x)].append(text)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(keep)):
        groups[uf.find(i)].append(i)
    facts = KBFacts(kb)
    cases = [_case([keep[i] for i in idx], why.get(root, []), tri, ents, idx, facts) for root, idx in groups.items()]
    cases.sort(key=lambda c: (-c.score, c.first_seen is None, c.first_seen or 0))
    for n, c in enumerate(cases, 1):
        c.id = f"CASE-{n:04d}-{c.id}"
    store.clear("cases")
    store.put_docs("cases", "id", [(c.id, c.model_dump_json()) for c in cases])
    return cases


def _gap(a: Alert, b: Alert) -> str:
    if a.first_seen and b.first_seen:
        mins = abs((b.first_seen - a.first_seen).total_seconds()) / 60
        return f" ({mins:.0f} min apart)" if mins >= 1 else " (under a minute apart)"
    return " (both without timestamps)"


def _case(members: list[Alert], reasons: list[str], tri: dict[str, Triage], ents: list[list[tuple[str, str]]],
          idx: list[int], facts: KBFacts) -> Case:
    techniques: list[str] = []
    tactics: list[str] = []
    for a in members:
        t = tri.get(a.alert_id)
        techniques += t.techniques if t else a.techniques
        tactics += t.tactics if t else []
    tactics = sorted(dict.fromkeys(tactics), key=tactic_rank)

    def _rank(tid: str) -> tuple[int, str]:
        tac = facts.technique(tid)["tactics"]
        return (min((tactic_rank(x) for x in tac), default=99), tid)

    techniques = sorted(dict.fromkeys(techniques), key=_rank)  # kill-chain order, then id
    ent_list: list[Entity] = []
    seen = set()
    for a in members:
        for kind, val in (("host", a.host_name), ("user", a.user_name), ("ip", a.source_ip), ("ip", a.destination_ip)):
            if val and val not in GENERIC_IPS and (kind, val) not in seen:
                seen.add((kind, val))
                ent_list.append(Entity(kind=kind, value=val))
    for i in idx:
        for kind, val in ents[i]:
            if kind == "process" and (kind, val) not in seen:
                seen.add((kind, val))
                ent_list.append(Entity(kind="process", value=val))
    scores = [tri[a.alert_id].score for a in members if a.alert_id in tri]
    sev_order = ["informational", "low", "medium", "high", "critical"]
    sev = max((tri[a.alert_id].severity for a in members if a.alert_id in tri), key=sev_order.index, default="low")
    times = [a.first_seen for a in members if a.first_seen] + [a.last_seen for a in members if a.last_seen]
    top = max(members, key=lambda a: (tri[a.alert_id].score if a.alert_id in tri else 0, a.alert_id))
    hosts = sorted({a.host_name for a in members if a.host_name})
    title = f"{top.rule_name}" + (f" on {', '.join(hosts[:2])}" if hosts else "") + \
        (f" (+{len(members) - 1} related alerts)" if len(members) > 1 else "")
    grouping = reasons or [f"single alert {members[0].alert_id}"]
    if len(reasons) > 25:
        grouping = reasons[:25] + [f"... and {len(reasons) - 25} more links"]
    cid = xxhash.xxh3_64_hexdigest("|".join(sorted(a.alert_id for a in members)).encode())[:8]
    # Case score: the strongest alert, raised by independent corroboration (noisy-OR of the top three).
    top3 = sorted(scores, reverse=True)[:3]
    p = 1.0
    for s in top3:
        p *= 1 - s
    return Case(id=cid, title=title, techniques=techniques, tactics=tactics,
                alerts=[a.alert_id for a in members], entities=ent_list, grouping=grouping,
                first_seen=min(times) if times else None, last_seen=max(times) if times else None,
                severity=sev, score=round(1 - p if len(top3) > 1 else (top3[0] if top3 else 0.0), 3))
