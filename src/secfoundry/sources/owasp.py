"""OWASP Cheat Sheet Series (OWASP/CheatSheetSeries ``cheatsheets/*.md``), CC BY-SA 4.0.

One ``CHEATSHEET`` record per sheet, id ``owasp:<file stem>`` (``owasp:SQL_Injection_Prevention_Cheat_Sheet``):
title from the ``#`` heading, the introduction as description, the ``##`` section titles, and
relations to the CWEs, CVEs, CAPEC patterns, ATT&CK techniques and other cheat sheets the sheet
links to or names. Documents keep the sheet's own Markdown (it already is clean Markdown);
relative links and images are made absolute so the text stands alone in a corpus.

Mirror: ``owasp-cheatsheets/cheatsheets/*.md``. Live: the repository's branch tarball.
Share-alike: every record and document carries ``CC-BY-SA-4.0``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources._archives import content_version, iter_tar, report, set_stats
from secfoundry.sources.base import document_of, GitTarballSource, Quarantine, Remote, Snapshot, decode_text, register
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core.records import CHEATSHEET, Record, Relation

OWASP_TARBALL = Remote("https://github.com/OWASP/CheatSheetSeries/archive/refs/heads/master.tar.gz",
                       "CheatSheetSeries-master.tar.gz")
SITE = "https://cheatsheetseries.owasp.org/"
LICENSE = "CC-BY-SA-4.0"
_MEMBER = re.compile(r"(^|/)cheatsheets/([^/]+)\.md$")

_CWE = re.compile(r"\bCWE[- ](\d{1,4})\b|cwe\.mitre\.org/data/definitions/(\d{1,4})\.html")
_CVE = re.compile(r"\bCVE-(\d{4})-(\d{4,})\b", re.I)
_CAPEC = re.compile(r"\bCAPEC[- ](\d{1,4})\b|capec\.mitre\.org/data/definitions/(\d{1,4})\.html")
_TECH = re.compile(r"attack\.mitre\.org/techniques/(T\d{4})(?:/(\d{3}))?")
_SHEET_LINK = re.compile(r"\]\((?:\.\./cheatsheets/|\./)?([A-Za-z0-9_\-]+_Cheat_Sheet)\.md(#[^)]*)?\)")
_REL_ASSET = re.compile(r"(\]\(|src=\")\.\./(assets/[^)\"\s]+)")


def absolutize(markdown: str) -> str:
    """Rewrite links to sibling sheets and ``../assets`` to the published site's URLs."""
    text = _SHEET_LINK.sub(lambda m: f"]({SITE}cheatsheets/{m.group(1)}.html{m.group(2) or ''})", markdown)
    return _REL_ASSET.sub(lambda m: f"{m.group(1)}{SITE}{m.group(2)}", text)


def _sections(markdown: str) -> list[tuple[int, str, str]]:
    """(level, heading, body) for each heading outside code fences."""
    out: list[tuple[int, str, list[str]]] = []
    in_fence = False
    cur: tuple[int, str, list[str]] = (0, "", [])
    out.append(cur)
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        m = None if in_fence else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            cur = (len(m.group(1)), m.group(2).strip(), [])
            out.append(cur)
        else:
            cur[2].append(line)
    return [(lvl, h, "\n".join(body).strip()) for lvl, h, body in out]


def sheet_record(markdown: str, *, stem: str, file: str, version: str) -> Record:
    if not markdown.strip():
        raise InputError("empty cheat sheet", file=file, row=stem)
    secs = _sections(markdown)
    title = next((h for lvl, h, _ in secs if lvl == 1), "")
    if not title:
        raise InputError("no '# Title' heading", file=file, row=stem)
    # The introduction: text before the first ## heading, else the first ## section's body.
    intro = next((b for lvl, _, b in secs if lvl == 1 and b), "")
    if not intro:
        intro = next((b for lvl, _, b in secs if lvl == 2 and b), "")
    rels: list[Relation] = []
    seen: set[tuple[str, str]] = set()

    def add(kind: str, target: str) -> None:
        if (kind, target) not in seen:
            seen.add((kind, target))
            rels.append(Relation(kind, target))

    for m in _CWE.finditer(markdown):
        add("related-weakness", f"CWE-{int(m.group(1) or m.group(2))}")
    for m in _CAPEC.finditer(markdown):
        add("related-attack-pattern", f"CAPEC-{int(m.group(1) or m.group(2))}")
    for m in _CVE.finditer(markdown):
        add("related-vulnerability", f"CVE-{m.group(1)}-{m.group(2)}")
    for m in _TECH.finditer(markdown):
        add("related-technique", m.group(1) + (f".{m.group(2)}" if m.group(2) else ""))
    for m in _SHEET_LINK.finditer(markdown):
        if m.group(1) != stem:
            add("related-cheatsheet", f"owasp:{m.group(1)}")
    return Record(
        id=f"owasp:{stem}",
        type=CHEATSHEET,
        name=title,
        description=absolutize(intro)[:4000],
        source="owasp",
        url=f"{SITE}cheatsheets/{stem}.html",
        version=version,
        license=LICENSE,
        relations=rels,
        attributes={
            "sections": [h for lvl, h, _ in secs if lvl == 2],
            "words": len(markdown.split()),
            "path": f"cheatsheets/{stem}.md",
        },
    )


@register
class OWASPCheatSheetsSource(GitTarballSource):
    name = "owasp"
    title = "OWASP Cheat Sheet Series"
    license = LICENSE
    homepage = SITE
    folder = "owasp-cheatsheets"

    patterns = ("cheatsheets/*.md", "*.tar.gz")
    tarball = OWASP_TARBALL

    def version_of(self, files: list[Path]) -> str:
        return super().version_of(files) or content_version(files)  # a plain folder of sheets: content hash

    def _sheets(self, snapshot: Snapshot, q: Quarantine) -> Iterator[tuple[str, str, str]]:
        """(file, stem, markdown) for every readable sheet."""
        for path in snapshot.files:
            if path.name.endswith(".tar.gz"):
                for member, data in iter_tar(path, lambda n: bool(_MEMBER.search(n)), source=self.name,
                                             quarantine=q):
                    stem = _MEMBER.search(member).group(2)  # type: ignore[union-attr]
                    try:
                        yield f"{path}:{member}", stem, decode_text(data, str(path), member)
                    except InputError as e:
                        report(q, self.name, path, member, e)
            elif path.suffix == ".md":
                try:
                    yield str(path), path.stem, decode_text(path.read_bytes(), str(path), path.name)
                except (InputError, OSError) as e:
                    report(q, self.name, path, path.name, e)

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[tuple[Record, str]]:
        """(sheet record, the sheet's Markdown): the document is the sheet itself, links absolutized."""
        n = 0
        for file, stem, text in self._sheets(snapshot, q):
            try:
                rec = sheet_record(text, stem=stem, file=file, version=snapshot.version)
            except InputError as e:
                report(q, self.name, file, stem, e)
                continue
            n += 1
            yield rec, text
        set_stats(snapshot, sheets=n)

    def render(self, rec: Record, context: Any = None) -> Document:
        return document_of(rec, absolutize(context).strip() + "\n", id=rec.id, source=self.name, license=LICENSE,
                           attribution="OWASP Cheat Sheet Series contributors, CC BY-SA 4.0")
