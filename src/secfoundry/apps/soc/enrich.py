"""What the knowledge base says about an alert: technique names and tactics, mitigations and
D3FEND countermeasures, KEV entries for CVEs, Sigma rule metadata. Every id handed out here
exists in the KB (ids it does not know are reported as unknown, never invented).

Works without a KB (``kb=None``): names fall back to the ids and nothing is recommended.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

# ATT&CK Enterprise tactics in kill-chain order (plus Sigma's newer names, placed where ATT&CK put them).
TACTIC_ORDER = ["reconnaissance", "resource-development", "initial-access", "execution", "persistence",
                "privilege-escalation", "defense-evasion", "stealth", "defense-impairment", "credential-access",
                "discovery", "lateral-movement", "collection", "command-and-control", "exfiltration", "impact"]
TACTIC_IDS = {"TA0043": "reconnaissance", "TA0042": "resource-development", "TA0001": "initial-access",
              "TA0002": "execution", "TA0003": "persistence", "TA0004": "privilege-escalation",
              "TA0005": "defense-evasion", "TA0006": "credential-access", "TA0007": "discovery",
              "TA0008": "lateral-movement", "TA0009": "collection", "TA0011": "command-and-control",
              "TA0010": "exfiltration", "TA0040": "impact"}
CVE_RE = re.compile(r"\bCVE[-_ ](\d{4})[-_ ](\d{4,7})\b", re.I)


def tactic_rank(tactic: str) -> int:
    t = tactic.lower().replace("_", "-").replace(" ", "-")
    return TACTIC_ORDER.index(t) if t in TACTIC_ORDER else len(TACTIC_ORDER)


class KBFacts:
    def __init__(self, kb: Any = None):
        self.kb = kb
        self.conn = kb.store.conn if kb is not None else None

    def _q(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self.conn is None:
            return []
        return [tuple(r) for r in self.conn.execute(sql, args).fetchall()]

    @lru_cache(maxsize=4096)
    def record(self, rid: str) -> dict[str, Any] | None:
        rows = self._q("SELECT id, type, name, description, attributes, source FROM records WHERE id=? "
                       "ORDER BY CASE source WHEN 'attack' THEN 0 ELSE 1 END LIMIT 1", (rid,))
        if not rows:
            return None
        i, t, n, d, a, s = rows[0]
        return {"id": i, "type": t, "name": n, "description": d or "", "attributes": json.loads(a or "{}"),
                "source": s}

    def exists(self, rid: str) -> bool:
        return self.record(rid) is not None

    @lru_cache(maxsize=4096)
    def technique(self, tid: str) -> dict[str, Any]:
        rec = self.record(tid)
        if rec is None or rec["type"] != "technique":
            return {"id": tid, "name": tid, "tactics": [], "known": False}
        return {"id": tid, "name": rec["name"], "tactics": list(rec["attributes"].get("tactics") or []),
                "known": True}

    @lru_cache(maxsize=4096)
    def mitigations(self, tid: str) -> list[dict[str, str]]:
        """ATT&CK mitigations (M....) of a technique, falling back to its parent's."""
        return self._countering(tid, "mitigations", "attack", "mitigates", "mitigation", rel_source="attack")

    @lru_cache(maxsize=4096)
    def d3fend(self, tid: str) -> list[dict[str, str]]:
        return self._countering(tid, "d3fend", "d3fend", "counters", "d3fend")

    def _countering(self, tid: str, method: str, source: str, rel_type: str, kind: str,
                    rel_source: str | None = None) -> list[dict[str, str]]:
        """Records of ``source`` related to technique ``tid`` by ``rel_type`` (relations of
        ``rel_source`` only, when given), falling back to the parent technique via ``method``."""
        rows = self._q("SELECT r.src, rec.name FROM relations r JOIN records rec ON rec.id=r.src AND rec.source=? "
                       "WHERE r.dst=? AND r.type=?" + (" AND r.source=?" if rel_source else "") + " ORDER BY r.src",
                       (source, tid, rel_type, *([rel_source] if rel_source else [])))
        if not rows and "." in tid:
            return getattr(self, method)(tid.split(".")[0])
        return [{"id": a, "name": b, "kind": kind, "for": tid} for a, b in rows]

    @lru_cache(maxsize=4096)
    def kev(self, cve: str) -> dict[str, Any] | None:
        rows = self._q("SELECT name, attributes FROM records WHERE id=? AND source='kev'", (cve,))
        if not rows:
            return None
        a = json.loads(rows[0][1] or "{}")
        return {"id": cve, "name": rows[0][0], "ransomware": a.get("known_ransomware_campaign_use", ""),
                "date_added": a.get("date_added", "")}

    @lru_cache(maxsize=8192)
    def sigma_rule(self, rid: str) -> dict[str, Any] | None:
        rec = self.record(rid)
        if rec is None:
            return None
        a = rec["attributes"]
        return {"id": rid, "name": rec["name"], "description": rec["description"], "level": a.get("level", ""),
                "status": a.get("status", ""), "falsepositives": a.get("falsepositives", []),
                "techniques": a.get("techniques", []), "tactics": a.get("tactics", []),
                "cves": [r[0] for r in self._q("SELECT dst FROM relations WHERE src=? AND type='related-vulnerability'",
                                               (rid,))]}


def related_rule_techniques(facts: "KBFacts", rid: str) -> list[str]:
    """Techniques of the Sigma rules a rule is related to (derived/similar/obsoletes), for rules
    that carry no ATT&CK tags themselves."""
    rows = facts._q("SELECT dst FROM relations WHERE src=? AND type='related-rule'", (rid,))
    rows += facts._q("SELECT src FROM relations WHERE dst=? AND type='related-rule'", (rid,))
    out: list[str] = []
    for (other,) in rows:
        meta = facts.sigma_rule(other)
        if meta:
            out += [t for t in meta["techniques"] if facts.technique(t)["known"]]
    return list(dict.fromkeys(out))


def technique_for_title(facts: "KBFacts", title: str) -> dict[str, Any] | None:
    """The KB's best ATT&CK technique for a rule title (lexical lanes only: BM25 over the records
    and ATT&CK procedure passages). Only trusted KB text (the rule's title) is ever the query."""
    if facts.kb is None or not title:
        return None
    return _search_title(facts, title)


@lru_cache(maxsize=4096)
def _search_title(facts: "KBFacts", title: str) -> dict[str, Any] | None:
    try:
        hits = facts.kb.search(title, type="technique", k=1, lanes=["bm25", "passages"])
    except Exception:  # noqa: BLE001 - a KB without FTS tables: no inference
        return None
    if not hits:
        return None
    info = facts.technique(hits[0].id)
    return info if info["known"] else None


def cves_in(text: str) -> list[str]:
    return list(dict.fromkeys(f"CVE-{a}-{b}" for a, b in CVE_RE.findall(text or "")))
