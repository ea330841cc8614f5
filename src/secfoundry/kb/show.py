"""``kb show``: everything the KB knows about one id, merged across sources, relations sorted
into sections (parents, children, mitigations, detections, tests, related CWE/CAPEC/ATT&CK...).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from secfoundry.kb import ids as idmod
from secfoundry.core.records import Record
from secfoundry.kb.store import Store

# Which source speaks first for an id's name/description when several have it.
SOURCE_PREFERENCE = ("attack", "cwe", "capec", "cve", "nvd", "d3fend", "nist80053", "osv", "kev", "owasp", "sigma",
                     "atomic", "complianceascode", "ctid", "epss")

# relation type -> (section when this id is the relation's source, section when it is the target);
# "" = not shown as its own section.
_SECTION_TABLE: tuple[tuple[str, str, str], ...] = (
    ("subtechnique-of", "parents", "children"),
    ("child-of", "parents", "children"),
    ("parent-of", "children", "parents"),
    ("member-of", "categories", "members"),
    ("has-member", "members", "categories"),
    ("in-tactic", "tactics", "techniques"),
    ("mitigates", "mitigates", "mitigations"),
    ("detects", "detects", "detections"),
    ("tests", "tests_for", "tests"),
    ("uses", "uses", "used_by"),
    ("counters", "counters", "countered_by"),
    ("revoked-by", "replaced_by", "replaces"),
    ("alias-of", "aliases", "advisories"),
    ("observed-example", "observed_examples", "example_of"),
    ("has-analytic", "analytics", "detection_strategies"),
    ("uses-data-component", "data_components", ""),
    ("component-of", "data_sources", "data_components"),
    ("attributed-to", "attributed_to", "campaigns"),
    ("targets", "targets", "targeted_by"),
    ("incorporated-into", "incorporated_into", ""),
    ("references-control", "controls", "compliance_rules"),
    ("implemented-by", "compliance_rules", ""),
    ("maps-to", "mapped_techniques", "mapped_from"),
)
# (direction, relation type) -> section. "out": this id is the relation's source.
SECTIONS: dict[tuple[str, str], str] = {
    **{("out", rel): out for rel, out, _ in _SECTION_TABLE if out},
    **{("in", rel): in_ for rel, _, in_ in _SECTION_TABLE if in_},
}
# Everything else is "related", grouped by what the other end is.
RELATED_BY_KIND = {
    "attack-technique": "related_techniques", "cwe": "related_weaknesses", "capec": "related_attack_patterns",
    "cve": "related_vulnerabilities", "ghsa": "related_advisories", "osv": "related_advisories",
    "nist-control": "related_controls", "d3fend": "related_d3fend", "owasp": "related_cheatsheets",
    "sigma": "related_rules", "attack-group": "related_groups", "attack-software": "related_software",
}


@dataclass
class RelatedRef:
    id: str
    name: str
    type: str
    relation: str
    direction: str  # "out": this -> id, "in": id -> this
    source: str
    note: str = ""  # e.g. the procedure example of a "uses" relation


@dataclass
class SourceView:
    source: str
    name: str
    type: str
    version: str
    url: str
    license: str
    deprecated: bool
    revoked: bool
    attributes: dict[str, Any]


@dataclass
class Entry:
    id: str
    kind: str | None
    type: str
    name: str
    description: str
    url: str
    aliases: list[str]
    revoked: bool
    deprecated: bool
    replaced_by: str | None
    sources: list[SourceView]
    sections: dict[str, list[RelatedRef]] = field(default_factory=dict)
    kev: dict[str, Any] | None = None
    epss: dict[str, Any] | None = None
    query: str = ""  # what was asked, when it differed (alias, spelling)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pick(records: list[Record]) -> Record:
    def key(r: Record) -> tuple[int, int, int, int]:
        pref = SOURCE_PREFERENCE.index(r.source) if r.source in SOURCE_PREFERENCE else len(SOURCE_PREFERENCE)
        return (int(r.revoked or r.deprecated), pref, -len(r.description or ""), 0)

    return min(records, key=key)


def find_id(store: Store, query: str) -> str | None:
    """The KB id for ``query``: canonical spelling, else an alias (APT28 -> G0007, GHSA -> PYSEC)."""
    canon = idmod.normalize_or_keep(query)
    if store.has_id(canon):
        return canon
    for cand in (canon, query.strip()):
        hits = store.ids_for_alias(cand)
        if hits:
            return hits[0]
    # A CVE/GHSA no record is keyed by, but relations point at (e.g. only an advisory aliases it).
    if store.conn.execute("SELECT 1 FROM relations WHERE dst=? LIMIT 1", (canon,)).fetchone():
        return canon
    return None


def build_entry(store: Store, query: str, note_chars: int = 400) -> Entry | None:
    rid = find_id(store, query)
    if rid is None:
        return None
    records = store.records_by_id(rid)
    kind = idmod.kind_of(rid)
    main = _pick(records) if records else None
    state = store.id_state(rid) if records else None
    aliases: list[str] = []
    for r in records:
        aliases += [a for a in r.aliases if a not in aliases and a != rid]
    entry = Entry(
        id=rid, kind=kind, type=main.type if main else "", name=main.name if main else "",
        description=main.description if main else "", url=next((r.url for r in records if r.url), ""),
        aliases=aliases, revoked=bool(state and state.revoked), deprecated=bool(state and state.deprecated),
        replaced_by=None,
        sources=[SourceView(r.source, r.name, r.type, r.version, r.url, r.license, r.deprecated, r.revoked,
                            r.attributes) for r in sorted(records, key=lambda r: r.source)],
        query=query if query != rid else "",
    )
    if state and (state.revoked or state.deprecated) and state.replaced_by:
        entry.replaced_by = idmod.validate(rid, _StoreKB(store)).current
    for r in records:
        if r.source == "kev":
            entry.kev = dict(r.attributes, source_version=r.version)
        elif r.source == "epss":
            entry.epss = dict(r.attributes, source_version=r.version)
    if entry.kev is None and kind == "cve":
        # KEV membership recorded by the CVE record itself (CISA ADP container), when KEV is absent.
        for r in records:
            added = r.attributes.get("kev_date_added") or r.attributes.get("kev")
            if added:
                entry.kev = {"dateAdded": added, "via": r.source}
                break
    _sections(store, entry, rid, note_chars)
    return entry


class _StoreKB:
    """The slice of ``KnowledgeBase`` that ``ids.validate`` needs."""

    def __init__(self, store: Store):
        self.store = store


def _sections(store: Store, entry: Entry, rid: str, note_chars: int) -> None:
    seen: dict[tuple[str, str, str], RelatedRef] = {}
    sections: dict[str, list[RelatedRef]] = {}
    for direction, source, rtype, other, note, oname, otype in store.edges(rid):
        if other == rid:
            continue
        kind = idmod.kind_of(other)
        section = SECTIONS.get((direction, rtype))
        if direction == "in" and kind == "sigma" and rtype.startswith("related-"):
            section = "detections"  # a Sigma rule tagged with this CVE/software/group detects it
        if section is None:
            section = RELATED_BY_KIND.get(kind or "", "related")
        key = (section, other, rtype)
        ref = seen.get(key)
        if ref is not None:  # the same edge again (several sources, or the other id in several sources)
            if not ref.name and oname:
                ref.name, ref.type = oname, otype
            if not ref.note and note:
                ref.note = note[:note_chars]
            continue
        ref = RelatedRef(other, oname, otype, rtype, direction, source, note[:note_chars])
        seen[key] = ref
        sections.setdefault(section, []).append(ref)
    for refs in sections.values():
        refs.sort(key=lambda r: _sort_key(r.id))
    entry.sections = dict(sorted(sections.items(), key=lambda kv: _SECTION_ORDER.get(kv[0], 99)))


_SECTION_ORDER = {s: i for i, s in enumerate((
    "replaced_by", "replaces", "parents", "children", "tactics", "techniques", "categories", "members",
    "mitigations", "detections", "tests", "countered_by", "mapped_techniques", "mapped_from", "controls",
    "compliance_rules", "related_techniques", "related_weaknesses",
    "related_attack_patterns", "related_vulnerabilities", "related_advisories", "advisories", "aliases",
    "related_controls", "mitigates", "detects", "tests_for", "counters", "uses", "used_by",
    "observed_examples", "example_of", "analytics", "detection_strategies", "data_components", "data_sources"))}


_ID_NUM = re.compile(r"([A-Za-z-]+?)-?(\d+)")


def _sort_key(i: str) -> tuple[str, int, str]:
    m = _ID_NUM.match(i)
    return (m.group(1), int(m.group(2)), i) if m else (i, 0, i)
