"""MITRE D3FEND: defensive techniques from the D3FEND ontology (OWL in Turtle).

The ontology is parsed with rdflib (the full ~2.5 MB Turtle, ~32k triples, parses in about
1.5 s, so no narrower hand-written parse is needed). Each class with a ``d3f:d3fend-id`` of the
form ``D3-XX`` under ``d3f:DefensiveTechnique`` becomes a ``D3FEND_TECHNIQUE`` record ``D3-XX``
with its label, definition, knowledge-base article (Markdown), synonyms, references, parent
technique (``child-of``) and tactic (Model, Harden, Detect, Isolate, Deceive, Evict, Restore,
found through ``d3f:enables`` on the technique or its ancestors).

Offensive links (``counters`` -> ATT&CK technique) are inferred the way D3FEND's own matrix
is: a defensive technique acts on a digital artifact (``owl:Restriction`` on e.g. ``d3f:disables
d3f:UserAccount``) and an ATT&CK technique acts on the same artifact or on a subclass of it
(``T1078 d3f:uses d3f:UserAccount``). The relation keeps the artifact and both properties.
Deprecated ATT&CK classes (``owl:deprecated true``) are not linked. The ``D3A-*`` ids (analytic
building blocks such as ML algorithms) are not unique in the ontology and are not techniques;
they are skipped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources._archives import content_version, report, set_stats
from secfoundry.sources.base import document_of, Quarantine, Remote, Snapshot, Source, decode_text, read_bytes, register
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core.records import D3FEND_TECHNIQUE, Record, Relation

D3FEND_TTL = Remote("https://d3fend.mitre.org/ontologies/d3fend.ttl", "d3fend.ttl")
NS = "http://d3fend.mitre.org/ontologies/d3fend.owl#"
_D3_ID = re.compile(r"^D3-[A-Z0-9]+$")
_NOT_ARTIFACT_PROPS = {"enables", "d3fend-id", "kb-reference", "definition"}


def _local(uri: Any) -> str:
    s = str(uri)
    return s.split("#", 1)[1] if "#" in s else s.rsplit("/", 1)[-1]


def parse_ontology(text: str, *, file: str, version: str) -> list[Record]:
    """All defensive-technique records of one D3FEND Turtle document."""
    import rdflib
    from rdflib.namespace import OWL, RDF, RDFS

    g = rdflib.Graph()
    try:
        g.parse(data=text, format="turtle")
    except Exception as e:  # rdflib raises several parser-specific types (BadSyntax, ...)
        msg = str(e).strip().splitlines()
        raise InputError(f"invalid Turtle: {' '.join(msg)[:300]}", file=file) from e
    D = rdflib.Namespace(NS)

    def label(node: Any) -> str:
        v = g.value(node, RDFS.label)
        return str(v) if v is not None else _local(node)

    parents_of: dict[Any, list[Any]] = defaultdict(list)
    restr_of: dict[Any, list[tuple[Any, Any]]] = defaultdict(list)
    for s, o in g.subject_objects(RDFS.subClassOf):
        if isinstance(o, rdflib.URIRef):
            parents_of[s].append(o)
        elif isinstance(o, rdflib.BNode):
            p, v = g.value(o, OWL.onProperty), g.value(o, OWL.someValuesFrom)
            if p is not None and isinstance(v, rdflib.URIRef):
                restr_of[s].append((p, v))

    ancestors_cache: dict[Any, set[Any]] = {}

    def ancestors(c: Any) -> set[Any]:
        if c not in ancestors_cache:
            seen, stack = {c}, [c]
            while stack:
                for p in parents_of.get(stack.pop(), ()):
                    if p not in seen:
                        seen.add(p)
                        stack.append(p)
            ancestors_cache[c] = seen
        return ancestors_cache[c]

    tactics = {t for t in g.subjects(RDF.type, D.DefensiveTactic)}
    d3_ids = {s: str(o).strip() for s, o in g.subject_objects(D["d3fend-id"]) if _D3_ID.match(str(o).strip())}
    deprecated = {s for s, o in g.subject_objects(OWL.deprecated) if str(o).lower() == "true"}

    # Offensive side: artifact (and every superclass of it) -> ATT&CK techniques acting on it.
    offence: dict[Any, list[tuple[str, str, str]]] = defaultdict(list)
    for s, o in g.subject_objects(D["attack-id"]):
        if s in deprecated:
            continue
        tid = str(o).strip()
        for prop, art in restr_of.get(s, ()):
            for sup in ancestors(art):
                offence[sup].append((tid, _local(prop), _local(art)))

    def tactic_of(s: Any) -> str:
        for a in ancestors(s):
            for t in g.objects(a, D.enables):
                if t in tactics:
                    return label(t)
            for prop, v in restr_of.get(a, ()):
                if _local(prop) == "enables" and v in tactics:
                    return label(v)
        return ""

    records = []
    for s, did in sorted(d3_ids.items(), key=lambda kv: kv[1]):
        artifacts = [(prop, art) for prop, art in restr_of.get(s, ()) if _local(prop) not in _NOT_ARTIFACT_PROPS
                     and art not in tactics]
        rels: list[Relation] = [Relation("child-of", d3_ids[p]) for p in parents_of.get(s, ()) if p in d3_ids]
        counters: dict[str, dict[str, Any]] = {}
        for prop, art in artifacts:
            for tid, oprop, oart in offence.get(art, ()):
                c = counters.setdefault(tid, {"artifacts": [], "defensive": [], "offensive": []})
                for key, val in (("artifacts", label(art)), ("defensive", _local(prop)), ("offensive", oprop)):
                    if val not in c[key]:
                        c[key].append(val)
                if oart != _local(art):  # matched through a subclass of the defended artifact
                    sub = c.setdefault("offensive_artifacts", [])
                    if oart not in sub:
                        sub.append(oart)
        rels += [Relation("counters", tid, attrs) for tid, attrs in sorted(counters.items())]
        refs = []
        for ref in g.objects(s, D["kb-reference"]):
            link = g.value(ref, D["has-link"])
            refs.append({"title": str(g.value(ref, D["kb-reference-title"]) or label(ref)),
                         "url": str(link) if link is not None else "",
                         "organization": str(g.value(ref, D["kb-organization"]) or "")})
        definition = g.value(s, D.definition)
        article = g.value(s, D["kb-article"])
        records.append(Record(
            id=did,
            type=D3FEND_TECHNIQUE,
            name=label(s),
            description=str(definition or "").strip(),
            source="d3fend",
            url=f"https://d3fend.mitre.org/technique/d3f:{_local(s)}/",
            version=version,
            license="MIT",
            aliases=sorted({str(x) for x in g.objects(s, D.synonym)}),
            deprecated=s in deprecated,
            relations=rels,
            attributes={
                "tactic": tactic_of(s),
                "class": _local(s),
                "kb_article": str(article or "").strip(),
                "artifacts": [{"property": _local(p), "artifact": label(a)} for p, a in artifacts],
                "references": sorted(refs, key=lambda r: r["title"]),
                "created": str(g.value(s, D.created) or ""),
            },
        ))
    return records


@register
class D3FENDSource(Source):
    name = "d3fend"
    title = "MITRE D3FEND ontology"
    license = "MIT"
    homepage = "https://d3fend.mitre.org"

    def __init__(self, url: str | None = None, sha256: str | None = None):
        """``url``: another ontology file (e.g. a release's); ``sha256`` pins its content."""
        self.url, self.sha256 = url, sha256

    patterns = ("*.ttl.gz", "*.ttl")
    first_only = True

    def remotes(self) -> tuple[Remote, ...]:
        return (Remote(self.url or D3FEND_TTL.url, D3FEND_TTL.name if not self.url else "", self.sha256),)

    def version_of(self, files: list[Path]) -> str:
        # The Turtle carries no version annotation (its release-date property is unused), so
        # the snapshot is identified by a content hash.
        return content_version(files)

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        for path in snapshot.files:
            try:
                text = decode_text(read_bytes(path), str(path))
                recs = parse_ontology(text, file=str(path), version=snapshot.version)
            except InputError as e:
                report(q, self.name, path, None, e)
                continue
            set_stats(snapshot, techniques=len(recs),
                      counters=sum(1 for r in recs for x in r.relations if x.type == "counters"))
            yield from recs

    def render(self, rec: Record, context: Any = None) -> Document:
        return technique_document(rec)


def technique_document(rec: Record) -> Document:
    a = rec.attributes
    lines = [f"# {rec.id}: {rec.name}", "", rec.description, ""]
    if a["tactic"]:
        lines.append(f"- **D3FEND tactic**: {a['tactic']}")
    parents = [r.target for r in rec.relations if r.type == "child-of"]
    if parents:
        lines.append(f"- **Parent technique**: {', '.join(parents)}")
    if rec.aliases:
        lines.append(f"- **Synonyms**: {', '.join(rec.aliases)}")
    for art in a["artifacts"]:
        lines.append(f"- **{art['property']}**: {art['artifact']}")
    lines.append("")
    if a["kb_article"]:
        # The article uses ## headings; nest them under this document's title.
        lines += [re.sub(r"^(#+)", r"#\1", a["kb_article"], flags=re.M), ""]
    counters = [r for r in rec.relations if r.type == "counters"]
    if counters:
        lines += ["## Counters ATT&CK techniques", ""]
        lines += [f"- {r.target} (via {', '.join(r.attributes['artifacts'])})" for r in counters]
        lines.append("")
    if a["references"]:
        lines += ["## References", ""]
        lines += [f"- {r['title']}" + (f" ({r['organization']})" if r["organization"] else "")
                  + (f": {r['url']}" if r["url"] else "") for r in a["references"]]
        lines.append("")
    return document_of(rec, "\n".join(lines).strip() + "\n", id=f"d3fend:{rec.id}", source="d3fend",
                       title=f"{rec.id}: {rec.name}", tactic=a["tactic"])
