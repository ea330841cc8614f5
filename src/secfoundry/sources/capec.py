"""MITRE CAPEC from its STIX 2.1 bundle (mitre/cti ``capec/2.1/stix-capec.json``).

Records: attack patterns ``CAPEC-<n>`` (type ``attack-pattern``). Relations: the CAPEC hierarchy
(``child-of``, derived ``parent-of``, ``can-precede``, ``can-follow``, ``peer-of``), related
weaknesses (``related-weakness`` -> ``CWE-<n>``) and ATT&CK techniques (``related-technique`` ->
``T....``) from external references. The bundle's course-of-action objects have no public ids
(``coa-102-0``), so their text is folded into the pattern's ``attributes["mitigations"]``.
Deprecated patterns are flagged; when the text points at exactly one other pattern, it is the
``replaced_by``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources.attack import clean_text, load_bundle
from secfoundry.sources.base import (markdown_document, Quarantine, Remote, Snapshot, Source, each_loaded,
                                     open_binary, register)
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core.html import fragment_to_markdown
from secfoundry.core import records as rt
from secfoundry.core.records import Record, Relation

LIVE_URL = "https://raw.githubusercontent.com/mitre/cti/master/capec/2.1/stix-capec.json"
_HIER = {"x_capec_child_of_refs": "child-of", "x_capec_parent_of_refs": "parent-of",
         "x_capec_can_precede_refs": "can-precede", "x_capec_can_follow_refs": "can-follow",
         "x_capec_peer_of_refs": "peer-of"}
_CAPEC_REF = re.compile(r"CAPEC-(\d+)")
_TECH = re.compile(r"^T\d{4}(\.\d{3})?$")


def html_to_text(fragment: str | None) -> str:
    """CAPEC's (x)html snippets -> Markdown (lists, headings, paragraphs): ``core.html``."""
    return fragment_to_markdown(fragment, tight=True)


class CapecSource(Source):
    name = "capec"
    title = "MITRE CAPEC (Common Attack Pattern Enumeration and Classification)"
    license = "CAPEC Terms of Use (free use with attribution; © The MITRE Corporation)"
    homepage = "https://capec.mitre.org/"

    patterns = ("stix-capec.json*",)
    first_only = True

    def __init__(self, url: str = LIVE_URL):
        self.url = url

    def remotes(self) -> list[Remote]:
        return [Remote(self.url, "stix-capec.json")]

    def version_of(self, files: list[Path]) -> str:
        return _peek_version(files[0])

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        stats: Counter[str] = Counter()
        out: dict[str, Record] = {}
        for file, bundle in each_loaded(self.name, snapshot.files, lambda f: load_bundle(Path(f)), q, stats):
            objs = bundle["objects"]
            stats["objects"] += len(objs)
            ids: dict[str, str] = {}
            for i, o in enumerate(objs):
                if isinstance(o, dict) and o.get("type") == "attack-pattern":
                    cid = _capec_id(o)
                    if cid:
                        ids[str(o.get("id"))] = cid
            coas: dict[str, str] = {}
            for o in objs:
                if isinstance(o, dict) and o.get("type") == "course-of-action" and o.get("description"):
                    coas[str(o.get("id"))] = html_to_text(o["description"])
            mitigations: dict[str, list[str]] = defaultdict(list)
            for o in objs:
                if isinstance(o, dict) and o.get("type") == "relationship" and o.get("relationship_type") == "mitigates":
                    text = coas.get(o.get("source_ref", ""))
                    if text and o.get("target_ref") in ids:
                        mitigations[o["target_ref"]].append(text)
                    else:
                        stats["dangling_mitigations"] += 1
            versions: set[str] = set()
            for i, o in enumerate(objs):
                if not isinstance(o, dict) or o.get("type") != "attack-pattern":
                    if not isinstance(o, dict) or not o.get("type"):
                        q.add(self.name, str(file), i, "object without a STIX type")
                    continue
                try:
                    rec = self._record(o, ids, mitigations.get(o["id"], []), stats)
                except Exception as e:  # one bad object must not stop the bundle
                    q.add(self.name, str(file), o.get("id", i), f"{type(e).__name__}: {e}")
                    stats["bad_objects"] += 1
                    continue
                versions.add(rec.version)
                out[rec.id] = rec
            if versions - {""}:
                snapshot.version = ",".join(sorted(versions - {""}))
        # The bundle lists parent-of itself; add the inverse only where it is missing.
        for rec in list(out.values()):
            for rel in rec.relations:
                if rel.type == "child-of" and rel.target in out:
                    parent = out[rel.target]
                    if not any(r.type == "parent-of" and r.target == rec.id for r in parent.relations):
                        parent.relations.append(Relation("parent-of", rec.id))
        for rec in out.values():
            rec.version = snapshot.version or rec.version
        stats["attack_patterns"] = len(out)
        stats["deprecated"] = sum(r.deprecated for r in out.values())
        snapshot.extra["stats"] = dict(stats)
        yield from out.values()

    def _record(self, o: dict[str, Any], ids: dict[str, str], mitigations: list[str],
                stats: Counter[str]) -> Record:
        cid = ids.get(str(o.get("id")))
        if not cid:
            raise InputError("attack-pattern without a CAPEC external id", field="external_references")
        relations: list[Relation] = []
        for key, rtype in _HIER.items():
            for ref in o.get(key) or ():
                if ref in ids:
                    relations.append(Relation(rtype, ids[ref]))
                else:
                    stats["dangling_refs"] += 1
        for ref in o.get("external_references") or ():
            src, ext = ref.get("source_name"), str(ref.get("external_id") or "").strip()
            if src == "cwe" and ext:
                relations.append(Relation("related-weakness", ext.upper()))
            elif src == "ATTACK" and ext:
                tid = ext.upper() if ext.upper().startswith("T") else f"T{ext}"
                if not _TECH.match(tid):
                    stats["unusual_attack_ids"] += 1  # kept and reported, never dropped
                relations.append(Relation("related-technique", tid, {"name": ref.get("description", "")}))
        desc = clean_text(o.get("description"))
        ext_desc = html_to_text(o.get("x_capec_extended_description"))
        deprecated = o.get("x_capec_status") == "Deprecated" or bool(o.get("x_mitre_deprecated")) \
            or bool(o.get("revoked"))
        replaced_by = None
        if deprecated:
            succ = sorted({f"CAPEC-{m}" for m in _CAPEC_REF.findall(desc)} - {cid})
            replaced_by = succ[0] if len(succ) == 1 else None
        attrs: dict[str, Any] = {
            "stix_id": o.get("id"),
            "status": o.get("x_capec_status", ""),
            "abstraction": o.get("x_capec_abstraction", ""),
            "domains": o.get("x_capec_domains") or [],
            "likelihood_of_attack": o.get("x_capec_likelihood_of_attack", ""),
            "typical_severity": o.get("x_capec_typical_severity", ""),
            "prerequisites": [html_to_text(p) for p in o.get("x_capec_prerequisites") or ()],
            "skills_required": {k: html_to_text(v) for k, v in (o.get("x_capec_skills_required") or {}).items()},
            "resources_required": [html_to_text(p) for p in o.get("x_capec_resources_required") or ()],
            "consequences": o.get("x_capec_consequences") or {},
            "example_instances": [html_to_text(p) for p in o.get("x_capec_example_instances") or ()],
            "execution_flow": html_to_text(o.get("x_capec_execution_flow")),
            "mitigations": mitigations,
            "modified": o.get("modified", ""),
        }
        if ext_desc:
            attrs["extended_description"] = ext_desc
        aliases = []
        for term in o.get("x_capec_alternate_terms") or ():
            aliases.append(html_to_text(term) if isinstance(term, str) else str(term))
        url = next((r.get("url", "") for r in o.get("external_references") or () if r.get("source_name") == "capec"), "")
        return Record(
            id=cid, type=rt.ATTACK_PATTERN, name=str(o.get("name") or cid),
            description="\n\n".join(x for x in (desc, ext_desc) if x), source=self.name, url=url,
            version=str(o.get("x_capec_version", "")), license=self.license, aliases=aliases,
            deprecated=deprecated, revoked=bool(o.get("revoked")), replaced_by=replaced_by,
            relations=relations, attributes=attrs,
        )

    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        current, names = self.current_records(snapshot, quarantine)
        for r in current:
            a = r.attributes
            lines = [f"# {r.id}: {r.name}", "",
                     f"CAPEC attack pattern (abstraction: {a['abstraction']}, status: {a['status']}).", "",
                     r.description]
            facts = [f"- **{k}**: {v}" for k, v in (("Likelihood of attack", a["likelihood_of_attack"]),
                                                    ("Typical severity", a["typical_severity"])) if v]
            if facts:
                lines += ["", *facts]
            parents = [x.target for x in r.relations if x.type == "child-of"]
            if parents:
                lines += ["", "Child of: " + ", ".join(f"{p} ({names.get(p, '?')})" for p in parents) + "."]
            if a["execution_flow"]:
                lines += ["", a["execution_flow"] if a["execution_flow"].startswith("#") else
                          "## Execution flow\n\n" + a["execution_flow"]]
            for title, key in (("Prerequisites", "prerequisites"), ("Resources required", "resources_required"),
                               ("Mitigations", "mitigations"), ("Example instances", "example_instances")):
                if a[key]:
                    lines += ["", f"## {title}", ""] + [f"- {x}" for x in a[key]]
            if a["skills_required"]:
                lines += ["", "## Skills required", ""] + [f"- {k}: {v}" for k, v in a["skills_required"].items()]
            cwes = [x.target for x in r.relations if x.type == "related-weakness"]
            techs = [f"{x.target} ({x.attributes.get('name', '')})" for x in r.relations if x.type == "related-technique"]
            if cwes:
                lines += ["", "Related weaknesses: " + ", ".join(cwes) + "."]
            if techs:
                lines += ["", "Related ATT&CK techniques: " + ", ".join(techs) + "."]
            yield markdown_document(self, r, lines)


def _peek_version(path: Path) -> str:
    """The CAPEC version from the first ``x_capec_version`` in the file (cheap, before parsing)."""
    try:
        with open_binary(path) as f:
            head = f.read(1 << 20).decode("utf-8", "replace")
    except (OSError, EOFError):
        return ""
    m = re.search(r'"x_capec_version"\s*:\s*"([^"]+)"', head)
    return m.group(1) if m else ""


def _capec_id(o: dict[str, Any]) -> str:
    for ref in o.get("external_references") or ():
        if isinstance(ref, dict) and ref.get("source_name") == "capec" and ref.get("external_id"):
            return str(ref["external_id"]).upper()
    return ""


register(CapecSource)
