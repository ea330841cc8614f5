"""MITRE CWE from its XML catalog (``cwec_v4.x.xml``, plain, gzipped or in the upstream zip).

Over 400 lines: one parser for the CWE XML catalog (weaknesses, categories, views and their
nested elements) and the documents rendered from it.

Parsed with ``defusedxml`` iterparse, one entry at a time: entity declarations (entity bombs) and
external references (XXE) are refused, and a catalog that breaks half-way keeps the entries read
before the break (the break itself is quarantined with its line and column).

Records: weaknesses (``weakness``), categories (``cwe-category``) and views (``cwe-view``), ids
``CWE-<n>``. Relations: the catalog's Related_Weakness natures (``child-of``, ``peer-of``,
``can-precede``, ``can-also-be``, ``requires``, ``starts-with``...) with ``view_id``/``ordinal``
attributes, the derived inverse ``parent-of`` edges, ``has-member`` (categories, views),
``member-of`` (inverse), ``related-attack-pattern`` (CAPEC ids) and ``observed-example`` (CVE
ids). Mapping notes (Usage Allowed/Allowed-with-Review/Discouraged/Prohibited, rationale,
reasons) are in ``attributes["mapping"]``. Deprecated entries are flagged and, when their text
names exactly one successor, carry it in ``replaced_by``.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import IO, Any, Iterator
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from secfoundry.sources.base import (markdown_document, Quarantine, Remote, Snapshot, Source, open_binary,
                                     register)
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core import records as rt
from secfoundry.core.records import Record, Relation

VERSION = "4.14"
LIVE_LATEST = "https://cwe.mitre.org/data/xml/cwec_latest.xml.zip"


def versioned_url(version: str) -> str:
    return f"https://cwe.mitre.org/data/xml/cwec_v{version}.xml.zip"


ENTRY_TAGS = {"Weakness": rt.WEAKNESS, "Category": rt.CWE_CATEGORY, "View": rt.CWE_VIEW}
_BLOCK = {"p", "div", "ul", "ol", "table", "tr", "blockquote", "pre"}
_CWE_REF = re.compile(r"CWE-(\d+)")


def _ln(tag: Any) -> str:
    """Local name of a (namespaced) tag."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(el: Element, name: str) -> Element | None:
    for c in el:
        if _ln(c.tag) == name:
            return c
    return None


def _children(el: Element | None, name: str) -> list[Element]:
    return [c for c in el if _ln(c.tag) == name] if el is not None else []


def _code_frag(t: str) -> str:
    """Example code text: XML pretty-printing whitespace is noise (lines come from br/div)."""
    if not t.strip():
        return ""
    return re.sub(r"[ \t]*\n[ \t]*", " ", t)


def _render(el: Element, out: list[str], code: bool = False, depth: int = 0) -> None:
    tag = _ln(el.tag)
    if code:
        if tag == "br":
            out.append("\n" + "  " * depth)
        elif tag == "div":
            out.append("\n" + "  " * depth)
        if el.text:
            out.append(_code_frag(el.text))
        for c in el:
            _render(c, out, True, depth + (1 if _ln(c.tag) == "div" and c.get("style") else 0))
            if _ln(c.tag) == "div":
                out.append("\n" + "  " * depth)
            if c.tail:
                out.append(_code_frag(c.tail))
        return
    if tag == "br":
        out.append("\n")
    block = tag in _BLOCK or tag == "li"
    if block:
        out.append("\n\n")
    if tag == "li":
        out.append("- ")
    if el.text:
        out.append(el.text)
    for c in el:
        _render(c, out, code, depth)
        if c.tail:
            out.append(c.tail)
    if block:
        out.append("\n\n")


def text_of(el: Element | None) -> str:
    """XHTML-bearing element -> Markdown-ish text with paragraph breaks, collapsed spaces."""
    if el is None:
        return ""
    out: list[str] = []
    _render(el, out)
    text = "".join(out)
    lines = [re.sub(r"\s+", " ", ln).strip() for ln in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def code_of(el: Element) -> str:
    out: list[str] = []
    _render(el, out, code=True)
    return "\n".join(ln.rstrip() for ln in "".join(out).strip("\n").split("\n") if ln.strip()).strip("\n")


def _texts(el: Element | None, name: str) -> list[str]:
    return [text_of(c) for c in _children(el, name) if text_of(c)]


def _open_catalog(path: Path) -> IO[bytes]:
    """The XML byte stream of a catalog file: .xml, .xml.gz, or the upstream .zip."""
    if zipfile.is_zipfile(path):
        zf = zipfile.ZipFile(path)
        names = [n for n in zf.namelist() if n.endswith(".xml")]
        if not names:
            raise InputError("zip archive contains no .xml file", file=str(path))
        return io.BufferedReader(zf.open(names[0]))  # type: ignore[arg-type]
    return open_binary(path)


class CweSource(Source):
    name = "cwe"
    title = "MITRE CWE (Common Weakness Enumeration)"
    license = "CWE Terms of Use (free use with attribution; © The MITRE Corporation)"
    homepage = "https://cwe.mitre.org/"

    patterns = ("cwec_*.xml.gz", "cwec_*.xml", "cwec_*.xml.zip")
    first_only = True

    def __init__(self, version: str = VERSION):
        self.version = version

    def remotes(self) -> list[Remote]:
        return [Remote(versioned_url(self.version) if self.version != "latest" else LIVE_LATEST)]

    def version_of(self, files: list[Path]) -> str:
        return _peek_version(files[0]) or (self.version if self.version != "latest" else "")

    # -- parsing -------------------------------------------------------------------------------
    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        recs: dict[str, Record] = {}
        stats: Counter[str] = Counter()
        for file in snapshot.files:
            for rec in self._parse_file(Path(file), snapshot, q, stats):
                recs[rec.id] = rec
        # Inverse edges so a parent lists its children and a weakness its categories.
        inverse: dict[str, list[Relation]] = defaultdict(list)
        for rec in recs.values():
            for rel in rec.relations:
                if rel.type == "child-of":
                    inverse[rel.target].append(Relation("parent-of", rec.id, dict(rel.attributes)))
                elif rel.type == "has-member":
                    inverse[rel.target].append(Relation("member-of", rec.id, dict(rel.attributes)))
        for target, rels in inverse.items():
            if target in recs:
                recs[target].relations.extend(rels)
            else:
                stats["dangling_relations"] += len(rels)
        stats.update(Counter(f"type:{r.type}" for r in recs.values()))
        stats["deprecated"] = sum(r.deprecated for r in recs.values())
        snapshot.extra["stats"] = dict(stats)
        yield from recs.values()

    def _parse_file(self, path: Path, snapshot: Snapshot, q: Quarantine, stats: Counter[str]) -> Iterator[Record]:
        version = snapshot.version
        try:
            stream = _open_catalog(path)
        except (OSError, zipfile.BadZipFile, InputError) as e:
            q.add(self.name, str(path), None, e)
            return
        depth = 0
        last_id: str | None = None
        try:
            with stream:
                for event, el in iterparse(stream, events=("start", "end"), forbid_dtd=False,
                                           forbid_entities=True, forbid_external=True):
                    if event == "start":
                        depth += 1
                        if depth == 1:
                            if _ln(el.tag) != "Weakness_Catalog":
                                raise InputError(f"root element is {_ln(el.tag)!r}, not Weakness_Catalog",
                                                 file=str(path))
                            version = el.get("Version") or version
                            snapshot.version = version
                            snapshot.extra["date"] = el.get("Date", "")
                        continue
                    depth -= 1
                    tag = _ln(el.tag)
                    if depth == 2 and tag in ENTRY_TAGS:
                        last_id = el.get("ID")
                        try:
                            yield self._entry(el, tag, version)
                            stats[f"entries:{tag}"] += 1
                        except Exception as e:  # one bad entry must not stop the catalog
                            q.add(self.name, str(path), f"{tag} ID={el.get('ID')}", f"{type(e).__name__}: {e}")
                            stats["bad_entries"] += 1
                        el.clear()
                    elif depth == 2 and tag == "External_Reference":
                        el.clear()
        except DefusedXmlException as e:
            err = InputError(f"refused unsafe XML ({type(e).__name__}: {e}); entity declarations and "
                             "external references are not allowed", file=str(path))
            q.add(self.name, str(path), None, err)
            stats["bad_files"] += 1
        except ParseError as e:
            line, col = getattr(e, "position", (None, None))
            after = f" (after entry ID={last_id})" if last_id else ""
            err = InputError(f"malformed XML at line {line} column {col}{after}: {e}", file=str(path))
            q.add(self.name, str(path), last_id, err)
            stats["bad_files"] += 1
        except (EOFError, OSError, zipfile.BadZipFile) as e:
            q.add(self.name, str(path), last_id, InputError(f"cannot read ({type(e).__name__}: {e})", file=str(path)))
            stats["bad_files"] += 1
        except InputError as e:
            q.add(self.name, str(path), None, e)
            stats["bad_files"] += 1

    def _entry(self, el: Element, tag: str, version: str) -> Record:
        num = el.get("ID")
        if not num or not num.isdigit():
            raise InputError(f"missing or non-numeric ID {num!r}", field="ID")
        rid = f"CWE-{num}"
        status = el.get("Status", "")
        attrs: dict[str, Any] = {"status": status}
        relations: list[Relation] = []
        if tag == "Weakness":
            desc = "\n\n".join(x for x in (text_of(_child(el, "Description")),
                                           text_of(_child(el, "Extended_Description"))) if x)
            attrs.update(abstraction=el.get("Abstraction", ""), structure=el.get("Structure", ""))
            for rw in _children(_child(el, "Related_Weaknesses"), "Related_Weakness"):
                nature = rw.get("Nature", "")
                relations.append(Relation(_kebab(nature), f"CWE-{rw.get('CWE_ID')}",
                                          {k: v for k, v in (("view_id", rw.get("View_ID")),
                                                             ("ordinal", rw.get("Ordinal")),
                                                             ("chain_id", rw.get("Chain_ID"))) if v}))
            for rap in _children(_child(el, "Related_Attack_Patterns"), "Related_Attack_Pattern"):
                if rap.get("CAPEC_ID"):
                    relations.append(Relation("related-attack-pattern", f"CAPEC-{rap.get('CAPEC_ID')}"))
            examples = []
            for ex in _children(_child(el, "Observed_Examples"), "Observed_Example"):
                ref = text_of(_child(ex, "Reference"))
                examples.append({"reference": ref, "description": text_of(_child(ex, "Description")),
                                 "link": text_of(_child(ex, "Link"))})
                if ref.upper().startswith("CVE-"):
                    relations.append(Relation("observed-example", ref.upper()))
            attrs["observed_examples"] = examples
            lik = _child(el, "Likelihood_Of_Exploit")
            if lik is not None:
                attrs["likelihood_of_exploit"] = text_of(lik)
            attrs["consequences"] = [
                {"scope": _texts(c, "Scope"), "impact": _texts(c, "Impact"), "note": text_of(_child(c, "Note"))}
                for c in _children(_child(el, "Common_Consequences"), "Consequence")]
            attrs["mitigations"] = [
                {"phase": _texts(m, "Phase"), "strategy": text_of(_child(m, "Strategy")),
                 "description": text_of(_child(m, "Description")),
                 "effectiveness": text_of(_child(m, "Effectiveness"))}
                for m in _children(_child(el, "Potential_Mitigations"), "Mitigation")]
            attrs["detection_methods"] = [
                {"method": text_of(_child(d, "Method")), "description": text_of(_child(d, "Description")),
                 "effectiveness": text_of(_child(d, "Effectiveness"))}
                for d in _children(_child(el, "Detection_Methods"), "Detection_Method")]
            attrs["modes_of_introduction"] = [text_of(_child(i, "Phase"))
                                              for i in _children(_child(el, "Modes_Of_Introduction"), "Introduction")]
            plats = _child(el, "Applicable_Platforms")
            attrs["platforms"] = [
                {"kind": _ln(p.tag), "name": p.get("Name") or p.get("Class") or "", "prevalence": p.get("Prevalence", "")}
                for p in (plats if plats is not None else [])]
            attrs["alternate_terms"] = [text_of(_child(t, "Term"))
                                        for t in _children(_child(el, "Alternate_Terms"), "Alternate_Term")]
            attrs["background_details"] = _texts(_child(el, "Background_Details"), "Background_Detail")
            attrs["demonstrative_examples"] = [self._example(d) for d in
                                               _children(_child(el, "Demonstrative_Examples"), "Demonstrative_Example")]
        elif tag == "Category":
            desc = text_of(_child(el, "Summary"))
            for m in _children(_child(el, "Relationships"), "Has_Member"):
                relations.append(Relation("has-member", f"CWE-{m.get('CWE_ID')}",
                                          {"view_id": m.get("View_ID")} if m.get("View_ID") else {}))
        else:  # View
            desc = text_of(_child(el, "Objective"))
            attrs["view_type"] = el.get("Type", "")
            attrs["audience"] = [text_of(_child(s, "Type")) for s in _children(_child(el, "Audience"), "Stakeholder")]
            for m in _children(_child(el, "Members"), "Has_Member"):
                relations.append(Relation("has-member", f"CWE-{m.get('CWE_ID')}"))
            filt = _child(el, "Filter")
            if filt is not None:
                attrs["filter"] = text_of(filt)
        mn = _child(el, "Mapping_Notes")
        if mn is not None:
            attrs["mapping"] = {
                "usage": text_of(_child(mn, "Usage")),
                "rationale": text_of(_child(mn, "Rationale")),
                "comments": text_of(_child(mn, "Comments")),
                "reasons": [r.get("Type", "") for r in _children(_child(mn, "Reasons"), "Reason")],
                "suggestions": [f"CWE-{s.get('CWE_ID')}" for s in _children(_child(mn, "Suggestions"), "Suggestion")],
            }
        tm = [{"taxonomy": t.get("Taxonomy_Name", ""), "entry_id": text_of(_child(t, "Entry_ID")),
               "entry_name": text_of(_child(t, "Entry_Name")), "fit": text_of(_child(t, "Mapping_Fit"))}
              for t in _children(_child(el, "Taxonomy_Mappings"), "Taxonomy_Mapping")]
        if tm:
            attrs["taxonomy_mappings"] = tm
        notes = [{"type": n.get("Type", ""), "text": text_of(n)} for n in _children(_child(el, "Notes"), "Note")]
        if notes:
            attrs["notes"] = notes
        deprecated = status == "Deprecated"
        replaced_by = None
        if deprecated:
            succ = sorted({f"CWE-{m}" for m in _CWE_REF.findall(desc)} - {rid})
            if len(succ) == 1:
                replaced_by = succ[0]
        name = el.get("Name", "")
        return Record(
            id=rid, type=ENTRY_TAGS[tag], name=name, description=desc, source=self.name,
            url=f"https://cwe.mitre.org/data/definitions/{num}.html", version=version, license=self.license,
            aliases=[a for a in attrs.get("alternate_terms", []) if a], deprecated=deprecated,
            replaced_by=replaced_by, relations=relations, attributes=attrs,
        )

    @staticmethod
    def _example(d: Element) -> dict[str, Any]:
        parts: list[dict[str, str]] = []
        for c in d:
            tag = _ln(c.tag)
            if tag in ("Intro_Text", "Body_Text"):
                parts.append({"kind": "text", "text": text_of(c)})
            elif tag == "Example_Code":
                parts.append({"kind": "code", "nature": c.get("Nature", ""), "language": c.get("Language", ""),
                              "text": code_of(c)})
        return {"parts": parts}

    # -- documents -------------------------------------------------------------------------------
    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        current, names = self.current_records(snapshot, quarantine)
        for r in current:
            yield self._document(r, names)

    def _document(self, r: Record, names: dict[str, str]) -> Document:
        a = r.attributes
        kind = {rt.WEAKNESS: "weakness", rt.CWE_CATEGORY: "category", rt.CWE_VIEW: "view"}[r.type]
        lines = [f"# {r.id}: {r.name}", ""]
        head = f"CWE {kind}"
        if a.get("abstraction"):
            head += f" (abstraction: {a['abstraction']}, status: {a.get('status', '')})"
        lines += [head + ".", "", r.description]
        parents = [x.target for x in r.relations if x.type == "child-of"]
        if parents:
            lines += ["", "Child of: " + ", ".join(f"{p} ({names.get(p, '?')})" for p in dict.fromkeys(parents)) + "."]
        if r.aliases:
            lines += ["", "Alternate terms: " + ", ".join(r.aliases) + "."]
        if a.get("background_details"):
            lines += ["", "## Background", "", *a["background_details"]]
        if a.get("consequences"):
            lines += ["", "## Common consequences", ""]
            for c in a["consequences"]:
                lines.append(f"- {', '.join(c['scope'])}: {', '.join(c['impact'])}" + (f". {c['note']}" if c["note"] else ""))
        if a.get("mitigations"):
            lines += ["", "## Potential mitigations", ""]
            for m in a["mitigations"]:
                if m["description"]:
                    lines.append(f"- {', '.join(m['phase']) or 'General'}: {m['description']}")
        if a.get("detection_methods"):
            lines += ["", "## Detection methods", ""]
            lines += [f"- {d['method']}: {d['description']}" for d in a["detection_methods"] if d["description"]]
        for i, ex in enumerate(a.get("demonstrative_examples", []), 1):
            lines += ["", f"## Demonstrative example {i}"]
            for p in ex["parts"]:
                if p["kind"] == "text":
                    lines += ["", p["text"]]
                else:
                    label = f"{p['nature']} code" if p["nature"] else "Code"
                    lines += ["", f"{label} ({p['language'] or 'example'}):", "",
                              f"```{p['language'].lower().replace(' ', '')}", p["text"], "```"]
        if a.get("observed_examples"):
            lines += ["", "## Observed examples", ""]
            lines += [f"- {o['reference']}: {o['description']}" for o in a["observed_examples"]]
        members = [x.target for x in r.relations if x.type == "has-member"]
        if members:
            lines += ["", "## Members", ""] + [f"- {m}: {names.get(m, '')}" for m in members]
        mp = a.get("mapping")
        if mp and mp.get("usage"):
            lines += ["", "## Vulnerability mapping", "", f"Usage: {mp['usage']}. {mp['rationale']}".strip()]
        return markdown_document(self, r, lines)


def _peek_version(path: Path) -> str:
    """Version attribute of the Weakness_Catalog root, read from the first bytes only."""
    try:
        with _open_catalog(path) as f:
            head = f.read(4096).decode("utf-8", "replace")
    except (OSError, EOFError, zipfile.BadZipFile, InputError):
        return ""
    m = re.search(r"<Weakness_Catalog\b[^>]*\bVersion=\"([^\"]+)\"", head)
    return m.group(1) if m else ""


def _kebab(nature: str) -> str:
    """ChildOf -> child-of, CanAlsoBe -> can-also-be."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", nature).lower() or "related"


register(CweSource)
