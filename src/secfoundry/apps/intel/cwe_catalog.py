"""The CWE catalog the intel apps validate against: names, text, view-1000 hierarchy, usage.

Built from the knowledge base (``secfoundry kb sync`` with the ``cwe`` source), read-only::

    cat = CweCatalog.from_kb()            # SECFOUNDRY_HOME/kb (or SECFOUNDRY_KB)
    cat.validate("CWE-534")               # deprecated -> "CWE-532"; unknown -> None
    cat.relation("CWE-121", "CWE-787")    # "child" (the prediction is a child of the gold)

Shared helper (engineer I2: use ``validate`` for any CWE id another app emits).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from secfoundry.core.errors import InputError

RESEARCH_VIEW = "1000"
NVD_VIEW = "1003"  # "Weaknesses for Simplified Mapping of Published Vulnerabilities": NVD's mapping level
NVD_SPECIAL = ("NVD-CWE-Other", "NVD-CWE-noinfo")
_CWE_ID = re.compile(r"^CWE-(\d{1,5})$")


def canonical_cwe(value: str) -> str | None:
    """``cwe79``/``CWE 79``/``CWE-079`` -> ``CWE-79``; NVD placeholders and others -> None."""
    m = re.fullmatch(r"\s*CWE[\s_-]?0*(\d{1,5})\s*", str(value), re.I)
    return f"CWE-{int(m.group(1))}" if m else None


@dataclass
class CweEntry:
    id: str
    name: str
    type: str  # weakness | cwe-category | cwe-view
    description: str = ""
    abstraction: str = ""  # Pillar | Class | Base | Variant | Compound
    usage: str = ""  # Allowed | Allowed-with-Review | Discouraged | Prohibited
    deprecated: bool = False
    replaced_by: str | None = None
    alternate_terms: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)  # view 1000 child-of targets

    def text(self, words: int = 80) -> str:
        """Name, alternate terms and the first words of the description (for lexical signals)."""
        body = " ".join(self.description.split()[:words])
        alts = "; ".join(self.alternate_terms)
        return f"{self.name}. {alts + '. ' if alts else ''}{body}".strip()


class CweCatalog:
    """CWE entries by id with the research-view hierarchy."""

    def __init__(self, entries: Iterable[CweEntry], version: str = "", nvd_view: Iterable[str] = ()):
        self.entries = {e.id: e for e in entries}
        self.version = version
        self.nvd_view = frozenset(nvd_view)  # members of view 1003
        self.children: dict[str, list[str]] = {}
        for e in self.entries.values():
            for p in e.parents:
                self.children.setdefault(p, []).append(e.id)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, cwe: str) -> bool:
        return cwe in self.entries

    @classmethod
    def from_kb(cls, kb_path: str | Path | None = None) -> "CweCatalog":
        """Load every CWE record and its view-1000 ``child-of`` edges (read-only)."""
        from secfoundry.kb import KnowledgeBase
        from secfoundry.kb.store import Store

        kb = KnowledgeBase.open(kb_path)
        db = kb.paths.db
        if not Path(db).is_file():
            raise InputError("no knowledge base here; run `secfoundry kb sync --sources cwe` first", file=str(db))
        store = Store(db, readonly=True)
        try:
            rows = store.conn.execute(
                "SELECT id, type, name, description, deprecated, replaced_by, aliases, attributes, version "
                "FROM records WHERE id LIKE 'CWE-%'").fetchall()
            edges = store.conn.execute(
                "SELECT src, dst, attributes FROM relations WHERE type='child-of' AND src LIKE 'CWE-%'").fetchall()
            members = store.conn.execute(
                "SELECT dst FROM relations WHERE src=? AND type='has-member' UNION "
                "SELECT src FROM relations WHERE dst=? AND type='member-of'", (f"CWE-{NVD_VIEW}",) * 2).fetchall()
        finally:
            store.close()
        if not rows:
            raise InputError("the knowledge base has no CWE records; run `secfoundry kb sync --sources cwe`",
                             file=str(db))
        parents: dict[str, list[str]] = {}
        nvd = {m[0] for m in members}
        for src, dst, attrs in edges:
            a = json.loads(attrs or "{}")
            if str(a.get("view_id", "")) == NVD_VIEW:
                nvd.add(src)
            if str(a.get("view_id", RESEARCH_VIEW)) == RESEARCH_VIEW and dst not in parents.get(src, []):
                parents.setdefault(src, []).append(dst)
        entries, version = [], ""
        for r in rows:
            attrs = json.loads(r["attributes"] or "{}")
            mapping = attrs.get("mapping") or {}
            status = str(attrs.get("status", ""))
            version = version or (r["version"] or "")
            entries.append(CweEntry(
                id=r["id"], name=r["name"] or "", type=r["type"] or "", description=r["description"] or "",
                abstraction=str(attrs.get("abstraction", "")), usage=str(mapping.get("usage", "")),
                deprecated=bool(r["deprecated"]) or status == "Deprecated",
                replaced_by=r["replaced_by"] or _replacement_from_text(r["description"] or ""),
                alternate_terms=[str(t) for t in json.loads(r["aliases"] or "[]")],
                parents=parents.get(r["id"], [])))
        return cls(entries, version, nvd)

    # -- validation -------------------------------------------------------------------------------
    def validate(self, value: str) -> str | None:
        """The current id for ``value``: deprecated ids follow their replacement (up to 5 hops);
        unknown ids, views, and deprecated ids with no replacement give None."""
        cwe = canonical_cwe(value)
        for _ in range(6):
            e = self.entries.get(cwe or "")
            if e is None:
                return None
            if not e.deprecated:
                return None if e.type == "cwe-view" else e.id
            cwe = canonical_cwe(e.replaced_by or "")
        return None

    def name(self, cwe: str) -> str:
        e = self.entries.get(cwe)
        return e.name if e else ""

    def nvd_level(self, cwe: str, max_depth: int = 4) -> str | None:
        """The nearest view-1000 ancestor that is in NVD's mapping view (1003), when ``cwe`` is not
        in it itself (e.g. CWE-121 Stack-based Buffer Overflow -> CWE-787 Out-of-bounds Write)."""
        if not self.nvd_view or cwe in self.nvd_view:
            return None
        frontier = [cwe]
        for _ in range(max_depth):
            nxt = []
            for c in frontier:
                for p in self.entries.get(c, CweEntry(c, "", "")).parents:
                    if p in self.nvd_view:
                        return p
                    nxt.append(p)
            frontier = nxt
        return None

    # -- hierarchy --------------------------------------------------------------------------------
    def ancestors(self, cwe: str, max_depth: int = 12) -> list[str]:
        out: list[str] = []
        frontier = [cwe]
        for _ in range(max_depth):
            nxt = []
            for c in frontier:
                for p in self.entries.get(c, CweEntry(c, "", "")).parents:
                    if p not in out and p != cwe:
                        out.append(p)
                        nxt.append(p)
            if not nxt:
                break
            frontier = nxt
        return out

    def relation(self, pred: str, gold: str) -> str:
        """How a predicted CWE relates to the gold one in view 1000: ``exact``, ``parent`` /
        ``child`` (one level: the prediction is the gold's parent / child), ``ancestor`` /
        ``descendant`` (further up / down), ``sibling`` (a shared direct parent) or ``miss``."""
        if pred == gold:
            return "exact"
        gp = set(self.entries.get(gold, CweEntry(gold, "", "")).parents)
        pp = set(self.entries.get(pred, CweEntry(pred, "", "")).parents)
        if pred in gp:
            return "parent"
        if gold in pp:
            return "child"
        if pred in self.ancestors(gold):
            return "ancestor"
        if gold in self.ancestors(pred):
            return "descendant"
        if gp & pp:
            return "sibling"
        return "miss"


def _replacement_from_text(desc: str) -> str | None:
    """Deprecated CWE entries name their replacement in prose ("... See CWE-532.")."""
    ids = re.findall(r"CWE-\d+", desc)
    return ids[0] if len(set(ids)) == 1 else None
