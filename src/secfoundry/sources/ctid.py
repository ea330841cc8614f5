"""CTID Mappings Explorer: capabilities mapped to ATT&CK (center-for-threat-informed-defense).

Each mappings file is ``{"metadata": {...framework, versions...}, "mapping_objects": [...]}``
where a mapping object links a *capability* (a KEV CVE, a NIST 800-53 control, an AWS/Azure/
GCP/M365 security service, a VERIS attribute, a CRI profile or CSA CCM item) to an ATT&CK
technique with a mapping type (``exploitation_technique``, ``primary_impact``,
``secondary_impact``, ``mitigates``, ``technique_scores`` with protect/detect/respond scores,
``related_to``). The older ``attack-to-cve-mappings.csv`` (CVE ID, Primary Impact, Secondary
Impact, Exploitation Technique, Uncategorized, Phase) adds CVE mappings of the same kind.

One ``MAPPING`` record per capability, merged across files: KEV and CSV CVEs keep their CVE id
(``CVE-2024-34102``) and NIST controls their canonical id (``AC-2``), so the KB shows them with
the CVE/control itself; other capabilities are ``<framework>:<capability_id>`` (``aws:amazon_cognito``).
Relations: ``mitigates`` for mitigation mappings, ``maps-to`` otherwise, each carrying the
mapping type, framework, scores and the ATT&CK version of the mapping. ``non_mappable`` entries
(techniques a framework cannot address) are counted, not turned into records. Techniques that
the pinned ATT&CK release does not know, or has revoked/deprecated, are reported.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources._archives import (as_list, at_ref, attack_catalog, iter_tar, report, set_stats,
                                          tar_date)
from secfoundry.sources.base import (document_of, GitTarballSource, Quarantine, Remote, Snapshot, load_json, register,
                                     text_stream)
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core.html import fragment_to_markdown
from secfoundry.core.records import MAPPING, Record, Relation

_REPO = "https://github.com/center-for-threat-informed-defense/mappings-explorer"
REMOTES = (
    Remote(f"{_REPO}/archive/refs/heads/main.tar.gz", "mappings-explorer-main.tar.gz"),
    Remote("https://raw.githubusercontent.com/center-for-threat-informed-defense/attack_to_cve/master/"
           "Att%26ckToCveMappings.csv", "attack-to-cve-mappings.csv"),
)
SITE = "https://center-for-threat-informed-defense.github.io/mappings-explorer/"
_MEMBER = re.compile(r"(^|/)mappings/.+_attack-[\d.]+-(enterprise|mobile|ics)\.json$")
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.I)
_TECH = re.compile(r"^T\d{4}(\.\d{3})?$")
_NIST = re.compile(r"^([A-Z]{2})-0*(\d+)(?:\(0*(\d+)\))?$")


def capability_key(framework: str, cap_id: str) -> str:
    cap_id = cap_id.strip()
    if framework == "kev" and _CVE.match(cap_id):
        return cap_id.upper()
    if framework.startswith("nist"):
        m = _NIST.match(cap_id.upper())
        if m:
            return f"{m.group(1)}-{int(m.group(2))}" + (f"({int(m.group(3))})" if m.group(3) else "")
    return f"{framework}:{cap_id}"


class _Builder:
    """Accumulates mapping objects into one record per capability."""

    def __init__(self) -> None:
        self.caps: dict[str, dict[str, Any]] = {}
        self.non_mappable: dict[str, int] = defaultdict(int)
        self.frameworks: dict[str, dict[str, Any]] = {}

    def add(self, key: str, *, name: str, description: str, group: str, framework: str, fw_version: str,
            attack_version: str, domain: str, technique: str, mapping_type: str, extra: dict[str, Any],
            comments: str, references: list[str]) -> None:
        cap = self.caps.setdefault(key, {"name": name, "description": description, "groups": [],
                                         "frameworks": [], "relations": {}, "comments": [],
                                         "references": []})
        if name and not cap["name"]:
            cap["name"] = name
        if description and not cap["description"]:
            cap["description"] = description
        for field, val in (("groups", group), ("frameworks", framework)):
            if val and val not in cap[field]:
                cap[field].append(val)
        if comments and comments not in cap["comments"]:
            cap["comments"].append(comments)
        for r in references:
            if r not in cap["references"]:
                cap["references"].append(r)
        rel_type = "mitigates" if mapping_type == "mitigates" else "maps-to"
        attrs = {"mapping_type": mapping_type, "framework": framework, "framework_version": fw_version,
                 "attack_version": attack_version, "domain": domain, **extra}
        cap["relations"].setdefault((rel_type, technique, mapping_type, framework), attrs)


def _mapping_file(data: Any, *, file: str, builder: _Builder, quarantine: Quarantine, source: str) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("mapping_objects"), list):
        raise InputError("not a mappings file (no mapping_objects list)", file=file, field="mapping_objects")
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    framework = str(meta.get("mapping_framework") or "unknown")
    fw_version = str(meta.get("mapping_framework_version") or "")
    attack_version = str(meta.get("attack_version") or "")
    domain = str(meta.get("technology_domain") or "")
    groups = meta.get("capability_groups") if isinstance(meta.get("capability_groups"), dict) else {}
    builder.frameworks[f"{framework} {fw_version} ({domain}, ATT&CK {attack_version})"] = {
        "framework": framework, "version": fw_version, "attack_version": attack_version, "domain": domain,
        "last_update": meta.get("last_update", ""), "objects": len(data["mapping_objects"])}
    for i, mo in enumerate(data["mapping_objects"]):
        if not isinstance(mo, dict):
            report(quarantine, source, file, i, InputError("mapping object is not a mapping", file=file, row=i))
            continue
        technique = str(mo.get("attack_object_id") or "").strip().upper()
        if mo.get("status") == "non_mappable" or not mo.get("capability_id"):
            builder.non_mappable[framework] += 1
            continue
        if not _TECH.match(technique):
            report(quarantine, source, file, i, InputError(f"malformed attack_object_id {technique!r}", file=file,
                                                           row=i, field="attack_object_id"))
            continue
        cap_id = str(mo["capability_id"])
        extra = {k: mo[k] for k in ("score_category", "score_value", "related_score") if mo.get(k)}
        group = str(mo.get("capability_group") or "")
        builder.add(capability_key(framework, cap_id), name=str(mo.get("capability_description") or cap_id),
                    description="", group=str(groups.get(group, group)), framework=framework,
                    fw_version=fw_version, attack_version=attack_version, domain=domain, technique=technique,
                    mapping_type=str(mo.get("mapping_type") or ""), extra=extra,
                    comments=str(mo.get("comments") or "").strip(),
                    references=[str(r) for r in as_list(mo.get("references"))])


_CSV_TYPES = {"Primary Impact": "primary_impact", "Secondary Impact": "secondary_impact",
              "Exploitation Technique": "exploitation_technique", "Uncategorized": "uncategorized"}


def _cve_csv(path: Path, builder: _Builder, quarantine: Quarantine, source: str) -> int:
    rows = 0
    try:
        with text_stream(path) as f:
            reader = csv.DictReader(f)
            if "CVE ID" not in (reader.fieldnames or []):
                raise InputError("no 'CVE ID' column", file=str(path), row=1)
            for line, row in enumerate(reader, start=2):
                cve = (row.get("CVE ID") or "").strip().upper()
                if not _CVE.match(cve):
                    report(quarantine, source, path, line, InputError(f"malformed CVE ID {cve!r}", file=str(path),
                                                                      row=line, field="CVE ID"))
                    continue
                rows += 1
                for col, mtype in _CSV_TYPES.items():
                    for tech in re.split(r"[;,\s]+", row.get(col) or ""):
                        tech = tech.strip().upper().rstrip(".")  # upstream has a few "T1036." typos
                        if not tech:
                            continue
                        if not _TECH.match(tech):
                            report(quarantine, source, path, line,
                                   InputError(f"malformed technique {tech!r}", file=str(path), row=line, field=col))
                            continue
                        builder.add(cve, name="", description="", group="", framework="attack_to_cve",
                                    fw_version=(row.get("Phase") or "").strip(), attack_version="",
                                    domain="enterprise", technique=tech, mapping_type=mtype, extra={},
                                    comments="", references=[])
    except UnicodeDecodeError as e:
        report(quarantine, source, path, None, InputError(f"not valid UTF-8: {e.reason}", file=str(path)))
    except (csv.Error, InputError) as e:
        report(quarantine, source, path, None, e)
    return rows


@register
class CTIDMappingsSource(GitTarballSource):
    name = "ctid"
    title = "CTID Mappings Explorer (KEV, NIST 800-53, cloud, VERIS ... to ATT&CK)"
    license = "Apache-2.0"
    homepage = SITE
    folder = "ctid-mappings"

    patterns = ("*.tar.gz", "*_attack-*.json", "*.csv", "nist-rev5_descriptions.json")

    def remotes(self) -> tuple[Remote, ...]:
        return (at_ref(REMOTES[0], self.ref, self.sha256), *REMOTES[1:])  # the raw files are not per-ref

    def version_of(self, files: list[Path]) -> str:
        # The exact framework versions are in each file's metadata (records() fills them in);
        # until then the snapshot is named by its files and the tarball's date.
        parts = [f"{f.name.split('.tar')[0]} {tar_date(f)}".strip() if f.name.endswith(".tar.gz") else f.stem
                 for f in files if f.suffix in (".gz", ".json") and f.name != "nist-rev5_descriptions.json"]
        return "; ".join(parts)

    def _build(self, snapshot: Snapshot, q: Quarantine) -> tuple[_Builder, dict[str, str]]:
        builder = _Builder()
        descriptions: dict[str, str] = {}
        seen: set[str] = set()  # a mappings file present loose and inside the tarball is read once
        csv_rows = 0
        for path in snapshot.files:
            if path.name == "nist-rev5_descriptions.json":
                try:
                    for item in load_json(path):
                        descriptions[capability_key("nist_800_53", str(item["id"]))] = str(item.get("description", ""))
                except (InputError, KeyError, TypeError) as e:
                    report(q, self.name, path, None, e)
            elif path.suffix == ".csv":
                csv_rows += _cve_csv(path, builder, q, self.name)
            elif path.name.endswith(".json"):
                if path.name in seen:
                    continue
                seen.add(path.name)
                try:
                    _mapping_file(load_json(path), file=str(path), builder=builder, quarantine=q, source=self.name)
                except InputError as e:
                    report(q, self.name, path, None, e)
            elif path.name.endswith(".tar.gz"):
                for member, data in iter_tar(path, lambda n: bool(_MEMBER.search(n)), source=self.name,
                                             quarantine=q):
                    base = member.rsplit("/", 1)[-1]
                    if base in seen:
                        continue
                    seen.add(base)
                    try:
                        _mapping_file(load_json(path, data, member), file=f"{path}:{member}", builder=builder,
                                      quarantine=q, source=self.name)
                    except InputError as e:
                        report(q, self.name, path, member, e)
        snapshot.extra["csv_rows"] = csv_rows
        return builder, descriptions

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        builder, descriptions = self._build(snapshot, q)
        root = snapshot.extra.get("mirror_root")
        catalog = attack_catalog(Path(root) if root else None)
        unknown: dict[str, int] = defaultdict(int)
        revoked: dict[str, int] = defaultdict(int)
        version = "; ".join(sorted(builder.frameworks))
        snapshot.extra["file_version"] = snapshot.version
        snapshot.version = version or snapshot.version
        for key in sorted(builder.caps):
            cap = builder.caps[key]
            rels = []
            for (rtype, tech, _, _), attrs in cap["relations"].items():
                if catalog is not None:
                    if not catalog.known(tech):
                        unknown[tech] += 1
                        attrs = {**attrs, "unknown_in_pinned_attack": True}
                    elif tech in catalog.revoked:
                        revoked[tech] += 1
                        attrs = {**attrs, "revoked_in_pinned_attack": True}
                rels.append(Relation(rtype, tech, attrs))
            rels.sort(key=lambda r: (r.target, r.attributes["mapping_type"]))
            description = descriptions.get(key, "") or cap["description"] or " ".join(cap["comments"][:3])
            yield Record(
                id=key,
                type=MAPPING,
                name=cap["name"] or key,
                description=fragment_to_markdown(description),
                source=self.name,
                url=SITE,
                version=version,
                license="Apache-2.0",
                relations=rels,
                attributes={"frameworks": cap["frameworks"], "capability_groups": cap["groups"],
                            "comments": cap["comments"], "references": cap["references"],
                            "techniques": sorted({r.target for r in rels})},
            )
        snapshot.extra.update({
            "frameworks": builder.frameworks,
            "non_mappable": dict(builder.non_mappable),
            "unknown_attack": dict(sorted(unknown.items())),
            "revoked_in_pinned_attack": dict(sorted(revoked.items())),
            "attack_checked_against": catalog.version if catalog else "",
        })
        set_stats(snapshot, capabilities=len(builder.caps), frameworks=version, csv_rows=snapshot.extra["csv_rows"],
                  non_mappable=snapshot.extra["non_mappable"], unknown_attack=snapshot.extra["unknown_attack"],
                  revoked_in_pinned_attack=snapshot.extra["revoked_in_pinned_attack"],
                  attack_checked_against=snapshot.extra["attack_checked_against"])

    def render(self, rec: Record, context: Any = None) -> Document:
        return mapping_document(rec)


def mapping_document(rec: Record) -> Document:
    a = rec.attributes
    lines = [f"# {rec.id}: {rec.name} mapped to ATT&CK" if rec.name != rec.id else f"# {rec.id} mapped to ATT&CK", ""]
    if rec.description:
        lines += [rec.description, ""]
    lines.append(f"- **Frameworks**: {', '.join(a['frameworks'])}")
    if a["capability_groups"]:
        lines.append(f"- **Capability group**: {', '.join(a['capability_groups'])}")
    lines += ["", "| ATT&CK technique | mapping | framework | score |", "|---|---|---|---|"]
    for r in rec.relations:
        score = " ".join(str(r.attributes.get(k, "")) for k in ("score_category", "score_value")).strip()
        lines.append(f"| {r.target} | {r.attributes['mapping_type']} | {r.attributes['framework']} | {score} |")
    lines.append("")
    for c in a["comments"][:10]:
        lines += [c, ""]
    return document_of(rec, "\n".join(lines).strip() + "\n", id=f"ctid:{rec.id}", source="ctid",
                       title=f"{rec.id} mapped to ATT&CK", frameworks=a["frameworks"])
