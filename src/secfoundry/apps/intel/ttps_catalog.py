"""ATT&CK as extract-ttps and emulate see it: techniques, tactics, groups/software and procedure
examples, read once from the knowledge base.

Everything here is derived from the KB's ``attack`` source (read-only SQL on the KB store: the
catalog needs every technique at once, which the per-id ``show`` API is not made for). Revoked
and deprecated ids map to their current replacement; every id an app emits goes through
``AttackCatalog.current``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from secfoundry.kb.knowledge import KnowledgeBase

TECH_RE = re.compile(r"\bT\d{4}(?:\.\d{3})?\b")
TACTIC_ORDER = ["reconnaissance", "resource-development", "initial-access", "execution", "persistence",
                "privilege-escalation", "defense-evasion", "credential-access", "discovery", "lateral-movement",
                "collection", "command-and-control", "exfiltration", "impact",
                # mobile / ICS tactics after the enterprise kill chain
                "evasion", "inhibit-response-function", "impair-process-control"]


@dataclass
class Technique:
    id: str
    name: str
    parent_name: str = ""
    tactics: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    stix_id: str = ""
    description: str = ""
    aliases: list[str] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.parent_name}: {self.name}" if self.parent_name else self.name


@dataclass
class Entity:
    """An ATT&CK group, software or campaign."""

    id: str
    name: str
    type: str  # group | software | campaign
    aliases: list[str] = field(default_factory=list)
    stix_id: str = ""
    stix_type: str = ""


@dataclass
class Procedure:
    text: str
    technique: str  # current technique id
    owner: str      # the group/software/campaign the example describes


class AttackCatalog:
    def __init__(self, kb: "KnowledgeBase"):
        self.kb = kb
        conn = kb.store.conn
        row = conn.execute("SELECT version FROM sources WHERE name='attack'").fetchone()
        self.version = (row[0] if row else "") or ""
        self.techniques: dict[str, Technique] = {}
        self.replacements: dict[str, str | None] = {}  # revoked/deprecated id -> current (None: no successor)
        self.entities: dict[str, Entity] = {}
        rows = conn.execute("SELECT id, type, name, description, aliases, attributes, revoked, deprecated, "
                            "replaced_by FROM records WHERE source='attack' AND type IN "
                            "('technique','group','software','campaign')").fetchall()
        for r in rows:
            rid, rtype = r["id"], r["type"]
            attrs = json.loads(r["attributes"] or "{}")
            aliases = [a for a in json.loads(r["aliases"] or "[]") if isinstance(a, str)]
            if r["revoked"] or r["deprecated"]:
                if rtype == "technique":
                    self.replacements[rid] = r["replaced_by"]
                continue
            if rtype == "technique":
                self.techniques[rid] = Technique(rid, r["name"] or rid, tactics=list(attrs.get("tactics") or []),
                                                 platforms=list(attrs.get("platforms") or []),
                                                 domains=list(attrs.get("domains") or []),
                                                 stix_id=attrs.get("stix_id", ""), description=r["description"] or "",
                                                 aliases=aliases)
            else:
                self.entities[rid] = Entity(rid, r["name"] or rid, rtype, aliases, attrs.get("stix_id", ""),
                                            attrs.get("stix_type", ""))
        for rel in conn.execute("SELECT src, dst FROM relations WHERE source='attack' AND type='revoked-by'"):
            if rel["src"] not in self.techniques and rel["src"].startswith("T"):
                self.replacements.setdefault(rel["src"], rel["dst"])
        for t in self.techniques.values():
            if "." in t.id:
                p = self.techniques.get(t.id.split(".")[0])
                t.parent_name = p.name if p else ""
        self._procedures: list[Procedure] | None = None

    # -- ids ------------------------------------------------------------------------------------------
    def current(self, tid: str) -> str | None:
        """The current technique id for ``tid`` (revoked/deprecated ones follow their replacement);
        None when the KB does not know it or it has no successor."""
        seen = set()
        while tid not in self.techniques:
            if tid in seen or tid not in self.replacements:
                return None
            seen.add(tid)
            nxt = self.replacements[tid]
            if not nxt:
                return None
            tid = nxt
        return tid

    def name(self, tid: str) -> str:
        t = self.techniques.get(tid)
        return t.full_name if t else ""

    def tactic_rank(self, tid: str) -> int:
        t = self.techniques.get(tid) or self.techniques.get(tid.split(".")[0])
        ranks = [TACTIC_ORDER.index(x) for x in (t.tactics if t else []) if x in TACTIC_ORDER]
        return min(ranks) if ranks else len(TACTIC_ORDER)

    def in_domain(self, tid: str, domain: str | None) -> bool:
        if not domain:
            return True
        t = self.techniques.get(tid)
        return bool(t and f"{domain}-attack" in t.domains)

    # -- procedure examples ---------------------------------------------------------------------------
    def procedures(self) -> list[Procedure]:
        """Every ATT&CK procedure example (a ``uses`` relationship's text), credited to its current
        technique. Ordered deterministically."""
        if self._procedures is None:
            out = []
            rows = self.kb.store.conn.execute(
                "SELECT owner, target, text FROM passages WHERE source='attack' AND kind='uses' "
                "AND target LIKE 'T%' ORDER BY pid").fetchall()
            for r in rows:
                cur = self.current(r["target"])
                text = (r["text"] or "").strip()
                if cur and text:
                    out.append(Procedure(text, cur, r["owner"]))
            self._procedures = out
        return self._procedures

    def uses(self, entity_id: str) -> list[str]:
        """Current technique ids an ATT&CK group/software/campaign is recorded using."""
        rows = self.kb.store.conn.execute(
            "SELECT DISTINCT dst FROM relations WHERE source='attack' AND src=? AND type='uses' AND dst LIKE 'T%'",
            (entity_id,)).fetchall()
        return sorted({c for r in rows if (c := self.current(r[0]))})

    def entity_names(self) -> Iterable[tuple[str, str]]:
        """(surface form, entity id) for every name and alias."""
        for e in self.entities.values():
            yield e.name, e.id
            for a in e.aliases:
                yield a, e.id


_CACHE: dict[tuple[str, float], AttackCatalog] = {}


def catalog_for(kb: "KnowledgeBase") -> AttackCatalog:
    """One catalog per KB file and modification time (the KB changes only on sync)."""
    import os

    try:
        mtime = os.path.getmtime(kb.paths.db)
    except OSError:
        mtime = 0.0
    key = (str(kb.paths.db), mtime)
    cat = _CACHE.get(key)
    if cat is None:
        if len(_CACHE) > 4:
            _CACHE.clear()
        cat = _CACHE[key] = AttackCatalog(kb)
        if not cat.techniques:
            from secfoundry.core.errors import InputError

            raise InputError("the knowledge base has no ATT&CK techniques; run `secfoundry kb sync --sources attack`",
                             file=str(kb.paths.db))
    return cat
