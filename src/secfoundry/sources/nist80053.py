"""NIST SP 800-53 rev5 security and privacy controls, from OSCAL JSON (usnistgov/oscal-content).

Reads any number of OSCAL *catalogs* (the full rev5 catalog, or resolved baseline catalogs such
as HIGH and PRIVACY, whose controls are merged by id) and *profiles* (LOW, MODERATE, HIGH,
PRIVACY baselines: ``imports[].include-controls[].with-ids``) for baseline membership.

One ``CONTROL`` record per control or enhancement, with the canonical label as id (``AC-2``,
``AC-2(1)``): title, family, the statement rendered as text with its parameters written the way
the publication prints them (``[Assignment: organization-defined frequency]``,
``[Selection (one or more): ...]``), supplemental guidance, parameters, baselines, ``child-of``
(enhancement -> base control) and ``related-control`` relations; withdrawn controls are flagged
deprecated and point at the control they were incorporated into.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources._archives import at_ref, report, set_stats
from secfoundry.sources.base import document_of, Quarantine, Remote, Snapshot, Source, load_json, register
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core.records import CONTROL, Record, Relation

_RAW = "https://raw.githubusercontent.com/usnistgov/oscal-content/main/nist.gov/SP800-53/rev5/json/"
REMOTES = (
    Remote(_RAW + "NIST_SP-800-53_rev5_catalog.json"),
    *(Remote(f"{_RAW}NIST_SP-800-53_rev5_{b}-baseline_profile.json") for b in ("LOW", "MODERATE", "HIGH", "PRIVACY")),
)
BASELINES = ("LOW", "MODERATE", "HIGH", "PRIVACY")
_INSERT = re.compile(r"\{\{\s*insert:\s*param,\s*([\w.\-]+)\s*\}\}")
_OSCAL_ID = re.compile(r"^([a-z]{2})-(\d+)(?:\.(\d+))?$")


def canonical_id(oscal_id: str) -> str:
    """``ac-2`` -> ``AC-2``; ``ac-2.1`` -> ``AC-2(1)``."""
    m = _OSCAL_ID.match(oscal_id.strip().lower())
    if not m:
        raise ValueError(f"not an SP 800-53 control id: {oscal_id!r}")
    fam, num, enh = m.groups()
    return f"{fam.upper()}-{int(num)}" + (f"({int(enh)})" if enh else "")


def _prop(obj: dict[str, Any], name: str, cls: str | None = None) -> str | None:
    for p in obj.get("props", []) or []:
        if p.get("name") == name and (cls is None and "class" not in p or p.get("class") == cls):
            return str(p.get("value"))
    return None


class _Params:
    """Parameter definitions of one control, addressable by id and by alt-identifier."""

    def __init__(self, params: list[dict[str, Any]]):
        self.by_id: dict[str, dict[str, Any]] = {}
        for p in params:
            if not isinstance(p, dict) or "id" not in p:
                continue
            self.by_id[p["id"]] = p
            alt = _prop(p, "alt-identifier")
            if alt:
                self.by_id.setdefault(alt, p)

    def render(self, text: str, depth: int = 0) -> str:
        def sub(m: re.Match[str]) -> str:
            p = self.by_id.get(m.group(1))
            if p is None or depth > 4:
                return f"[Assignment: {m.group(1)}]"
            sel = p.get("select")
            if isinstance(sel, dict):
                how = " (one or more)" if sel.get("how-many") == "one-or-more" else ""
                choices = "; ".join(self.render(str(c), depth + 1) for c in sel.get("choice", []))
                return f"[Selection{how}: {choices}]"
            label = p.get("label") or next((g.get("prose") for g in p.get("guidelines", []) if g.get("prose")), "")
            if not label:
                return f"[Assignment: {m.group(1)}]"
            return f"[Assignment: {label if label.startswith('organization-defined') else 'organization-defined ' + label}]"

        return _INSERT.sub(sub, text)


def _render_parts(parts: list[dict[str, Any]], params: _Params, indent: int = 0) -> list[str]:
    lines = []
    for part in parts or []:
        if not isinstance(part, dict) or part.get("name") not in (None, "item", "statement"):
            continue
        label = _prop(part, "label") or ""
        prose = params.render(str(part.get("prose") or "")).strip()
        text = " ".join(x for x in (label, prose) if x)
        if text:
            lines.append("  " * indent + text)
        lines += _render_parts(part.get("parts", []), params, indent + (1 if text else 0))
    return lines


def control_record(ctl: dict[str, Any], *, family: str, parent: str | None, file: str,
                   version: str) -> Record:
    oscal_id = str(ctl.get("id") or "")
    try:
        cid = _prop(ctl, "label") or canonical_id(oscal_id)
        canonical_id(oscal_id)  # validates the OSCAL id too
    except ValueError as e:
        raise InputError(str(e), file=file, row=oscal_id or "?", field="id") from e
    params = _Params(ctl.get("params", []) or [])
    statement, guidance = [], ""
    for part in ctl.get("parts", []) or []:
        if part.get("name") == "statement":
            if part.get("prose"):
                statement.append(params.render(part["prose"]).strip())
            statement += _render_parts(part.get("parts", []), params)
        elif part.get("name") == "guidance":
            guidance = str(part.get("prose") or "").strip()
    links = ctl.get("links", []) or []
    related = [canonical_id(link["href"].lstrip("#")) for link in links
               if link.get("rel") == "related" and _OSCAL_ID.match(link.get("href", "").lstrip("#"))]
    moved = [canonical_id(link["href"].lstrip("#")) for link in links
             if link.get("rel") in ("incorporated-into", "moved-to")
             and _OSCAL_ID.match(link.get("href", "").lstrip("#"))]
    withdrawn = (_prop(ctl, "status") or "") == "withdrawn"
    rels = [Relation("child-of", parent)] if parent else []
    rels += [Relation("related-control", r) for r in dict.fromkeys(related)]
    rels += [Relation("incorporated-into", r) for r in moved]
    return Record(
        id=cid,
        type=CONTROL,
        name=str(ctl.get("title") or cid),
        description="\n".join(statement),
        source="nist80053",
        url=f"https://csrc.nist.gov/projects/cprt/catalog#/cprt/framework/version/SP_800_53_5_1_1/home?element={cid}",
        version=version,
        license="CC0-1.0",
        deprecated=withdrawn,
        replaced_by=moved[0] if withdrawn and moved else None,
        relations=rels,
        attributes={
            "family": family,
            "oscal_id": oscal_id,
            "class": ctl.get("class", ""),
            "enhancement": parent is not None,
            "guidance": guidance,
            "params": [{"id": p["id"], "label": p.get("label", ""),
                        "choices": (p.get("select") or {}).get("choice", [])}
                       for p in ctl.get("params", []) or [] if isinstance(p, dict) and "id" in p],
            "implementation_level": _prop(ctl, "implementation-level") or "",
            "sort_id": _prop(ctl, "sort-id") or "",
            "baselines": [],
        },
    )


def walk_catalog(catalog: dict[str, Any], *, file: str, version: str,
                 quarantine: Quarantine, source: str = "nist80053") -> Iterator[Record]:
    def walk(controls: list[Any], family: str, parent: str | None) -> Iterator[Record]:
        for ctl in controls or []:
            if not isinstance(ctl, dict):
                continue
            try:
                rec = control_record(ctl, family=family, parent=parent, file=file, version=version)
            except InputError as e:
                report(quarantine, source, file, ctl.get("id"), e)
                continue
            yield rec
            yield from walk(ctl.get("controls", []), family, rec.id)

    for group in catalog.get("groups", []) or []:
        yield from walk(group.get("controls", []), str(group.get("title") or group.get("id") or ""), None)
    yield from walk(catalog.get("controls", []), "", None)


def baseline_name(profile: dict[str, Any], file: str) -> str:
    title = str((profile.get("metadata") or {}).get("title") or "") + " " + Path(file).name
    for b in BASELINES:
        if b in title.upper():
            return b
    return Path(file).name.split(".")[0]


def profile_ids(profile: dict[str, Any]) -> set[str]:
    ids: set[str] = set()
    for imp in profile.get("imports", []) or []:
        for inc in imp.get("include-controls", []) or []:
            for oid in inc.get("with-ids", []) or []:
                try:
                    ids.add(canonical_id(str(oid)))
                except ValueError:
                    continue
    return ids


@register
class NIST80053Source(Source):
    name = "nist80053"
    title = "NIST SP 800-53 rev5 controls (OSCAL)"
    license = "CC0-1.0"  # US Government work; NIST waives rights worldwide under CC0
    homepage = "https://csrc.nist.gov/pubs/sp/800/53/r5/upd1/final"
    folder = "nist-800-53"

    def __init__(self, ref: str | None = None):
        """``ref``: an oscal-content tag or commit (e.g. ``v1.3.0``) to pin the live files to."""
        self.ref = ref

    patterns = ("*catalog*.json", "*catalog*.json.gz", "*profile.json", "*profile.json.gz")

    def remotes(self) -> tuple[Remote, ...]:
        return tuple(at_ref(r, self.ref) for r in REMOTES)

    def version_of(self, files: list[Path]) -> str:
        versions = set()
        for f in files:
            if "catalog" in f.name:
                try:
                    versions.add(str(load_json(f)["catalog"]["metadata"]["version"]))
                except (InputError, KeyError, TypeError):
                    pass  # records() reports the damage with the file name
        return ", ".join(sorted(versions))

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        merged: dict[str, Record] = {}
        baselines: dict[str, set[str]] = {}
        versions: set[str] = set()
        for path in snapshot.files:
            try:
                doc = load_json(path)
                if not isinstance(doc, dict) or not ({"catalog", "profile"} & doc.keys()):
                    raise InputError("neither an OSCAL catalog nor a profile", file=str(path))
            except InputError as e:
                report(q, self.name, path, None, e)
                continue
            if "profile" in doc:
                baselines[baseline_name(doc["profile"], str(path))] = profile_ids(doc["profile"])
                continue
            meta = doc["catalog"].get("metadata") or {}
            version = str(meta.get("version") or "")
            versions.add(version)
            for rec in walk_catalog(doc["catalog"], file=str(path), version=version, quarantine=q):
                merged.setdefault(rec.id, rec)  # resolved baselines repeat the same control text
        for rec in merged.values():
            rec.attributes["baselines"] = [b for b in BASELINES if rec.id in baselines.get(b, ())] + sorted(
                b for b in baselines if b not in BASELINES and rec.id in baselines[b])
        missing = {b: sorted(ids - merged.keys()) for b, ids in baselines.items() if ids - merged.keys()}
        snapshot.version = ", ".join(sorted(v for v in versions if v)) or snapshot.version
        snapshot.extra.update({"baselines": {b: len(v) for b, v in baselines.items()},
                               "baseline_ids_without_text": missing})
        set_stats(snapshot, controls=len(merged), baselines=snapshot.extra["baselines"],
                  baseline_ids_without_text=sum(len(v) for v in missing.values()))
        yield from sorted(merged.values(), key=lambda r: r.attributes["sort_id"] or r.id)

    def render(self, rec: Record, context: Any = None) -> Document:
        return control_document(rec)


def control_document(rec: Record) -> Document:
    a = rec.attributes
    lines = [f"# {rec.id}: {rec.name}", "", f"- **Family**: {a['family']}"]
    if a["baselines"]:
        lines.append(f"- **Baselines**: {', '.join(a['baselines'])}")
    parent = next((r.target for r in rec.relations if r.type == "child-of"), None)
    if parent:
        lines.append(f"- **Enhancement of**: {parent}")
    if rec.deprecated:
        lines.append("- **Withdrawn**" + (f": incorporated into {rec.replaced_by}" if rec.replaced_by else ""))
    lines += ["", "## Control", "", rec.description, ""]
    if a["guidance"]:
        lines += ["## Discussion", "", a["guidance"], ""]
    related = [r.target for r in rec.relations if r.type == "related-control"]
    if related:
        lines += [f"**Related controls**: {', '.join(related)}", ""]
    return document_of(rec, "\n".join(lines).strip() + "\n", id=f"nist80053:{rec.id}", source="nist80053",
                       title=f"{rec.id}: {rec.name}", family=a["family"], baselines=a["baselines"])
