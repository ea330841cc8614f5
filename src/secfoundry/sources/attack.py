"""MITRE ATT&CK (enterprise, mobile, ics) from the STIX 2.1 bundles of mitre-attack/attack-stix-data.

Over 400 lines: ATT&CK's STIX bundles are one graph (ids, relationships, and documents that
need names from across it), parsed and rendered in one pass.

The bundles are parsed as plain JSON: building ``stix2`` objects for ~29k objects takes tens of
seconds, and we only read documented ATT&CK fields. Every object with an ATT&CK id becomes a
``Record``; relationship objects become ``Relation``s on their source record (forward edges
only: group --uses--> technique, mitigation --mitigates--> technique, sub-technique
--subtechnique-of--> technique, detection strategy --detects--> technique, old --revoked-by-->
new, campaign --attributed-to--> group, technique --targets--> asset). Relation attributes carry
the STIX relationship id and its description (the procedure example) so a consumer can hold a
single procedure sentence out of an index.

Extra relation types this module adds: ``in-tactic`` (technique -> TA id), ``has-analytic``
(detection strategy -> AN id), ``uses-data-component`` (analytic -> DC id), ``component-of``
(data component -> DS id), ``related-attack-pattern`` (technique -> CAPEC id).

Revoked and deprecated objects are yielded flagged (``revoked``/``deprecated``/``replaced_by``)
and left out of the corpus documents. Objects that share an ATT&CK id with another object (old
deprecated mitigations reused technique ids, e.g. T1066) keep the id on the current object; the
other gets ``<id>-<kind>`` and the clash is reported in ``snapshot.extra["stats"]``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from secfoundry.sources.base import markdown_document, Quarantine, Remote, Snapshot, Source, each_loaded, load_json, register
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core import records as rt
from secfoundry.core.records import Record, Relation

VERSION = "18.1"
DOMAINS = ("enterprise-attack", "mobile-attack", "ics-attack")
RAW = "https://raw.githubusercontent.com/mitre-attack/attack-stix-data/master"
INDEX_URL = f"{RAW}/index.json"
# sha256 pins of the upstream v18.1 files, by domain. Empty: the offline mirror holds a
# re-serialised copy, so the upstream digests could not be verified here; the version is pinned
# by URL and the digest of what was fetched is recorded in the download's .meta.json.
PINS: dict[str, str] = {}
ATTACK_SOURCE_NAMES = ("mitre-attack", "mitre-mobile-attack", "mitre-ics-attack")

TYPE_MAP = {
    "attack-pattern": rt.TECHNIQUE,
    "x-mitre-tactic": rt.TACTIC,
    "intrusion-set": rt.GROUP,
    "malware": rt.SOFTWARE,
    "tool": rt.SOFTWARE,
    "course-of-action": rt.MITIGATION,
    "campaign": rt.CAMPAIGN,
    "x-mitre-data-source": rt.DATA_SOURCE,
    "x-mitre-data-component": rt.DATA_SOURCE,
    "x-mitre-detection-strategy": rt.DETECTION,
    "x-mitre-analytic": rt.DETECTION,
    "x-mitre-asset": rt.ASSET,
}
# Bundle plumbing, not knowledge: never records.
SKIP_TYPES = {"relationship", "marking-definition", "identity", "x-mitre-matrix", "x-mitre-collection"}
RELATION_TYPES = {"uses", "mitigates", "subtechnique-of", "detects", "revoked-by", "attributed-to", "targets"}
# Which STIX type owns an id prefix when two objects claim the same id.
PREFIX_OWNER = {"T": "attack-pattern", "M": "course-of-action", "S": ("malware", "tool")}

_CITATION = re.compile(r"\s*\(Citation:[^)]*\)")
_CODE = re.compile(r"</?code>")


def clean_text(text: str | None) -> str:
    """ATT&CK/CAPEC description -> clean Markdown: drop citation markers, <code> -> backticks."""
    if not text:
        return ""
    text = _CITATION.sub("", text)
    text = _CODE.sub("`", text)
    return re.sub(r"[ \t]+\n", "\n", text).strip()


def external_id(obj: dict[str, Any], names: Iterable[str] = ATTACK_SOURCE_NAMES) -> tuple[str, str]:
    """(id, url) from the first external reference of one of ``names``."""
    for ref in obj.get("external_references") or ():
        if isinstance(ref, dict) and ref.get("source_name") in names and ref.get("external_id"):
            return str(ref["external_id"]).strip(), str(ref.get("url") or "")
    return "", ""


def bundle_version(bundle: dict[str, Any], file: Path) -> str:
    """The ATT&CK version: the collection object's x_mitre_version, else the file name."""
    for obj in bundle.get("objects", ()):
        if isinstance(obj, dict) and obj.get("type") == "x-mitre-collection" and obj.get("x_mitre_version"):
            return str(obj["x_mitre_version"])
    m = re.search(r"-(\d+\.\d+)\.json", file.name)
    return m.group(1) if m else ""


def index_versions(index: dict[str, Any]) -> dict[str, dict[str, str]]:
    """attack-stix-data ``index.json`` -> {domain: {version: url}} (newest first)."""
    out: dict[str, dict[str, str]] = {}
    for col in index.get("collections") or ():
        for v in col.get("versions") or ():
            url = str(v.get("url") or "")
            m = re.search(r"/([a-z]+-attack)-[0-9.]+\.json$", url)
            if m and v.get("version"):
                out.setdefault(m.group(1), {})[str(v["version"])] = url
    return out


def load_bundle(path: Path) -> dict[str, Any]:
    data = load_json(path)
    if not isinstance(data, dict) or data.get("type") != "bundle" or not isinstance(data.get("objects"), list):
        raise InputError("not a STIX 2.1 bundle (expected type 'bundle' with an 'objects' list)", file=str(path))
    return data


@dataclass
class _Parsed:
    records: list[Record]
    stats: dict[str, Any] = field(default_factory=dict)


@register
class AttackSource(Source):
    name = "attack"
    title = "MITRE ATT&CK"
    license = "ATT&CK Terms of Use (royalty-free, attribution; © The MITRE Corporation)"
    homepage = "https://attack.mitre.org/"

    def __init__(self, version: str = VERSION, domains: Iterable[str] = DOMAINS, base_url: str = RAW):
        self.version = version
        self.base_url = base_url.rstrip("/")
        self.domains = tuple(domains)
        self._cache: dict[tuple[str, ...], _Parsed] = {}  # records() and documents() share one parse

    def remotes(self) -> list[Remote]:
        pins = PINS if self.version == VERSION else {}
        return [Remote(f"{self.base_url}/{d}/{d}-{self.version}.json", f"{d}-{self.version}.json", pins.get(d) or None)
                for d in self.domains]

    def available_versions(self, fetcher: Any) -> dict[str, dict[str, str]]:
        """The versions upstream lists in index.json, per domain (for choosing a newer pin)."""
        return index_versions(fetcher.get_json(f"{self.base_url}/index.json"))

    def mirror_patterns(self) -> list[str]:
        return [f"{d}-{self.version}.json*" for d in self.domains]

    def version_of(self, files: list[Path]) -> str:
        return self.version

    # -- parsing -------------------------------------------------------------------------------
    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        yield from self._parse(snapshot, q).records

    def _parse(self, snapshot: Snapshot, quarantine: Quarantine | None) -> _Parsed:
        key = tuple(f"{f}:{_stamp(f)}" for f in snapshot.files)  # a re-download invalidates it
        if key in self._cache:
            return self._cache[key]
        q = quarantine if quarantine is not None else Quarantine()
        objects: dict[str, dict[str, Any]] = {}  # stix id -> object (merged across domains)
        obj_file: dict[str, str] = {}
        rels: list[tuple[dict[str, Any], str]] = []
        stats: Counter[str] = Counter()
        versions: set[str] = set()
        unknown_types: Counter[str] = Counter()
        for file, bundle in each_loaded(self.name, snapshot.files, load_bundle, q, stats):
            if v := bundle_version(bundle, file):
                versions.add(v)
            stats[f"objects:{file.name}"] = len(bundle["objects"])
            for i, obj in enumerate(bundle["objects"]):
                if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj.get("type"):
                    q.add(self.name, str(file), i, "object without a STIX id/type")
                    stats["bad_objects"] += 1
                    continue
                if obj["type"] == "relationship":
                    rels.append((obj, str(file)))
                    continue
                if obj["type"] in SKIP_TYPES:
                    continue
                prev = objects.get(obj["id"])
                if prev is not None:  # same object in several domains: merge its domain list
                    doms = list(dict.fromkeys([*prev.get("x_mitre_domains", []), *obj.get("x_mitre_domains", [])]))
                    if obj.get("modified", "") > prev.get("modified", ""):
                        objects[obj["id"]] = obj
                    objects[obj["id"]]["x_mitre_domains"] = doms
                    continue
                objects[obj["id"]] = obj
                obj_file[obj["id"]] = str(file)
        if len(versions) > 1:
            stats["mixed_versions"] = 1
        version = ",".join(sorted(versions)) or snapshot.version
        snapshot.version = version or snapshot.version

        ids = self._assign_ids(objects, q, obj_file, stats)
        tactic_ids = {}
        for sid, obj in objects.items():
            if obj["type"] == "x-mitre-tactic" and sid in ids:
                for dom in obj.get("x_mitre_domains") or ["enterprise-attack"]:
                    tactic_ids[(_kill_chain_name(dom), obj.get("x_mitre_shortname", ""))] = ids[sid]

        built: dict[str, Record] = {}
        for sid, obj in objects.items():
            if sid not in ids:
                continue
            try:
                rec = self._record(obj, ids[sid], ids, tactic_ids, version, stats)
            except Exception as e:  # one broken object must not stop the bundle
                q.add(self.name, obj_file[sid], sid, f"{type(e).__name__}: {e}")
                stats["bad_objects"] += 1
                continue
            if obj["type"] not in TYPE_MAP:
                unknown_types[obj["type"]] += 1
            built[sid] = rec

        for rel, file in rels:
            self._relation(rel, file, built, ids, q, stats)

        recs = list(built.values())
        stats.update(Counter(f"type:{r.type}" for r in recs))
        stats["revoked"] = sum(r.revoked for r in recs)
        stats["deprecated"] = sum(r.deprecated for r in recs)
        out = dict(stats)
        out["unknown_types"] = dict(unknown_types)
        snapshot.extra["stats"] = out
        parsed = _Parsed(recs, out)
        self._cache[key] = parsed
        return parsed

    def _assign_ids(self, objects: dict[str, dict[str, Any]], q: Quarantine, obj_file: dict[str, str],
                    stats: Counter[str]) -> dict[str, str]:
        claims: dict[str, list[str]] = defaultdict(list)
        for sid, obj in objects.items():
            ext, _ = external_id(obj)
            if not ext:
                q.add(self.name, obj_file[sid], sid, f"{obj['type']} without an ATT&CK external id; skipped")
                stats["no_external_id"] += 1
                continue
            claims[ext].append(sid)
        ids: dict[str, str] = {}
        for ext, sids in claims.items():
            if len(sids) == 1:
                ids[sids[0]] = ext
                continue
            ranked = sorted(sids, key=lambda s: _claim_rank(ext, objects[s]))
            ids[ranked[0]] = ext
            for s in ranked[1:]:
                o = objects[s]
                kind = TYPE_MAP.get(o["type"], o["type"])
                if o["type"] == objects[ranked[0]]["type"]:
                    kind = (o.get("x_mitre_domains") or ["dup"])[0].split("-")[0]
                alt = f"{ext}-{kind}"
                n = 2
                while alt in claims or alt in ids.values():
                    alt, n = f"{ext}-{kind}{n}", n + 1
                ids[s] = alt
                stats["id_clashes"] += 1
        return ids

    def _record(self, obj: dict[str, Any], rid: str, ids: dict[str, str], tactic_ids: dict[tuple[str, str], str],
                version: str, stats: Counter[str]) -> Record:
        stype = obj["type"]
        _, url = external_id(obj)
        name = str(obj.get("name") or rid)
        aliases = [a for a in (obj.get("aliases") or obj.get("x_mitre_aliases") or []) if a != name]
        attrs: dict[str, Any] = {
            "stix_id": obj["id"],
            "stix_type": stype,
            "domains": list(obj.get("x_mitre_domains") or []),
            "attack_version": obj.get("x_mitre_version", ""),
            "created": obj.get("created", ""),
            "modified": obj.get("modified", ""),
        }
        for src, dst in (("x_mitre_platforms", "platforms"), ("x_mitre_contributors", "contributors"),
                         ("x_mitre_detection", "detection"), ("x_mitre_shortname", "shortname"),
                         ("first_seen", "first_seen"), ("last_seen", "last_seen"),
                         ("x_mitre_collection_layers", "collection_layers"), ("x_mitre_log_sources", "log_sources"),
                         ("x_mitre_sectors", "sectors"), ("x_mitre_related_assets", "related_assets"),
                         ("x_mitre_mutable_elements", "mutable_elements"), ("x_mitre_remote_support", "remote_support"),
                         ("x_mitre_impact_type", "impact_type"), ("x_mitre_tactic_type", "tactic_type")):
            if obj.get(src) not in (None, "", []):
                attrs[dst] = obj[src]
        relations: list[Relation] = []
        if stype == "attack-pattern":
            attrs["is_subtechnique"] = bool(obj.get("x_mitre_is_subtechnique"))
            tactics = []
            for phase in obj.get("kill_chain_phases") or ():
                tname = phase.get("phase_name", "")
                tactics.append(tname)
                tid = tactic_ids.get((phase.get("kill_chain_name", ""), tname))
                if tid:
                    relations.append(Relation("in-tactic", tid))
                else:
                    stats["unknown_tactics"] += 1
            attrs["tactics"] = tactics
            for ref in obj.get("external_references") or ():
                if ref.get("source_name") == "capec" and ref.get("external_id"):
                    relations.append(Relation("related-attack-pattern", str(ref["external_id"]).upper()))
        elif stype in ("malware", "tool"):
            attrs["software_type"] = stype
        elif stype == "x-mitre-detection-strategy":
            for ref in obj.get("x_mitre_analytic_refs") or ():
                relations.append(Relation("has-analytic", ids.get(ref, ref)))
        elif stype == "x-mitre-analytic":
            seen = set()
            for ls in obj.get("x_mitre_log_source_references") or ():
                dc = ids.get(ls.get("x_mitre_data_component_ref", ""), "")
                if dc and dc not in seen:
                    seen.add(dc)
                    relations.append(Relation("uses-data-component", dc))
            attrs["log_source_references"] = [
                {"data_component": ids.get(ls.get("x_mitre_data_component_ref", ""), ""),
                 "name": ls.get("name", ""), "channel": ls.get("channel", "")}
                for ls in obj.get("x_mitre_log_source_references") or ()]
        elif stype == "x-mitre-data-component":
            ds = ids.get(obj.get("x_mitre_data_source_ref") or "", "")
            if ds:
                relations.append(Relation("component-of", ds))
        desc = clean_text(obj.get("description"))
        return Record(
            id=rid, type=TYPE_MAP.get(stype, stype.removeprefix("x-mitre-")), name=name, description=desc,
            source=self.name, url=url, version=version, license=self.license, aliases=aliases,
            deprecated=bool(obj.get("x_mitre_deprecated")), revoked=bool(obj.get("revoked")),
            relations=relations, attributes=attrs,
        )

    def _relation(self, rel: dict[str, Any], file: str, built: dict[str, Record], ids: dict[str, str],
                  q: Quarantine, stats: Counter[str]) -> None:
        rtype = rel.get("relationship_type", "")
        src, dst = rel.get("source_ref", ""), rel.get("target_ref", "")
        if rel.get("revoked") or rel.get("x_mitre_deprecated"):
            stats["relations_skipped_revoked_or_deprecated"] += 1
            return
        if rtype not in RELATION_TYPES:
            stats[f"relations_unknown:{rtype}"] += 1
        rec = built.get(src)
        if rec is None:
            q.add(self.name, file, rel.get("id"), f"relationship source {src!r} is not an ATT&CK object here")
            stats["relations_dangling"] += 1
            return
        target = ids.get(dst)
        if target is None:
            q.add(self.name, file, rel.get("id"), f"relationship target {dst!r} is not an ATT&CK object here")
            stats["relations_dangling"] += 1
            return
        attrs = {"stix_id": rel.get("id", "")}
        if rel.get("description"):
            attrs["description"] = rel["description"].strip()
        rec.relations.append(Relation(rtype, target, attrs))
        if rtype == "revoked-by":
            rec.replaced_by = target
        stats[f"relations:{rtype}"] += 1

    # -- documents -------------------------------------------------------------------------------
    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        parsed = self._parse(snapshot, quarantine)
        names = {r.id: r.name for r in parsed.records}
        analytics = {r.id: r for r in parsed.records if r.attributes.get("stix_type") == "x-mitre-analytic"}
        mitigated_by: dict[str, list[str]] = defaultdict(list)
        used_by: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for r in parsed.records:
            if r.revoked or r.deprecated:
                continue
            for rel in r.relations:
                if rel.type == "mitigates":
                    mitigated_by[rel.target].append(r.id)
                elif rel.type == "uses" and rel.attributes.get("description"):
                    used_by[rel.target].append((r.id, rel.attributes["description"]))
        for r in parsed.records:
            if r.revoked or r.deprecated or r.type == rt.DETECTION and r.attributes.get("stix_type") == "x-mitre-analytic":
                continue
            yield self._document(r, names, mitigated_by.get(r.id, []), used_by.get(r.id, []), analytics)

    def _document(self, r: Record, names: dict[str, str], mitigations: list[str],
                  procedures: list[tuple[str, str]], analytics: dict[str, Record]) -> Document:
        kind = {rt.TECHNIQUE: "Sub-technique" if r.attributes.get("is_subtechnique") else "Technique"}.get(
            r.type, r.type.replace("-", " ").capitalize())
        lines = [f"# {r.name} ({r.id})", "", f"MITRE ATT&CK {kind} {r.id}."]
        if r.aliases:
            lines.append(f"Also known as: {', '.join(r.aliases)}.")
        meta = []
        if r.attributes.get("tactics"):
            meta.append(f"- **Tactics**: {', '.join(t.replace('-', ' ').title() for t in r.attributes['tactics'])}")
        if r.attributes.get("platforms"):
            meta.append(f"- **Platforms**: {', '.join(r.attributes['platforms'])}")
        if r.attributes.get("domains"):
            meta.append(f"- **Domains**: {', '.join(r.attributes['domains'])}")
        parents = [rel.target for rel in r.relations if rel.type == "subtechnique-of"]
        if parents:
            meta.append(f"- **Sub-technique of**: {parents[0]} {names.get(parents[0], '')}".rstrip())
        if meta:
            lines += ["", *meta]
        if r.description:
            lines += ["", r.description]
        if r.attributes.get("detection"):
            lines += ["", "## Detection", "", clean_text(r.attributes["detection"])]
        if mitigations:
            lines += ["", "## Mitigations", ""] + [f"- {m}: {names.get(m, '')}" for m in sorted(mitigations)]
        uses = [rel for rel in r.relations if rel.type in ("uses", "mitigates", "detects")]
        if uses:
            head = {"mitigates": "## Mitigates", "detects": "## Detects"}.get(uses[0].type, "## Techniques and software used")
            lines += ["", head, ""]
            for rel in sorted(uses, key=lambda x: x.target):
                text = clean_text(rel.attributes.get("description", ""))
                lines.append(f"- {rel.target} {names.get(rel.target, '')}" + (f": {text}" if text else ""))
        ans = [analytics[rel.target] for rel in r.relations if rel.type == "has-analytic" and rel.target in analytics]
        if ans:
            lines += ["", "## Analytics"]
            for a in ans:
                plats = ", ".join(a.attributes.get("platforms", []))
                lines += ["", f"### {a.id}" + (f" ({plats})" if plats else ""), "", a.description]
                logs = [f"{x['name']} ({x['channel']})" for x in a.attributes.get("log_source_references", [])]
                if logs:
                    lines.append(f"\nLog sources: {'; '.join(logs)}.")
        if procedures:
            lines += ["", "## Procedure examples", ""]
            lines += [f"- {sid} {names.get(sid, '')}: {clean_text(text)}" for sid, text in sorted(procedures)]
        return markdown_document(self, r, lines, domains=r.attributes.get("domains", []))


def _stamp(path: Path) -> str:
    try:
        st = Path(path).stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return "missing"


def _kill_chain_name(domain: str) -> str:
    return {"enterprise-attack": "mitre-attack", "mobile-attack": "mitre-mobile-attack",
            "ics-attack": "mitre-ics-attack"}.get(domain, domain)


def _claim_rank(ext: str, obj: dict[str, Any]) -> tuple[int, int, int, str]:
    """Lower wins the id: current before revoked/deprecated, the prefix's own type, enterprise."""
    owner = PREFIX_OWNER.get(ext[:1], ())
    owner = (owner,) if isinstance(owner, str) else owner
    stale = int(bool(obj.get("revoked"))) + int(bool(obj.get("x_mitre_deprecated")))
    return (stale, int(obj["type"] not in owner), int("enterprise-attack" not in (obj.get("x_mitre_domains") or [])),
            obj["id"])
