"""What a document is *about*: the identifiers in its title, first heading and alias line.

Dedup must never remove a document about a distinct entity (a CVE, CWE, ATT&CK technique,
GHSA/OSV/RUSTSEC advisory, NIST control ...) because another document about a *different* entity
looks alike: Oracle advisories and kernel CVEs share template paragraphs, CWE pages share a
template. A document's identity is the set of ids in its title, its first line when that is
short (a title line), its first Markdown heading
(the connectors render ``# CVE-2017-10262``, ``# Extra Window Memory Injection (T1055.011)``,
``# PYSEC-2020-342: ...``) and on an ``Aliases`` line near the top (OSV/GHSA mirrors name the
CVE there), plus a record-id field near the top (``- **Rule**: `file_ownerships_var_log```, as
``RULE:<id>``: ComplianceAsCode rules of different ids can share one title). Ids merely *mentioned* in a body (a KEV list, references) do not make an identity.

:func:`identity_key` picks one canonical id so that mirrors of one vulnerability agree: the
lowest CVE id if there is one, else the lowest GHSA id, else the lowest id. An OSV record
(``PYSEC-X``, alias ``CVE-Y``), its GHSA mirror and the NVD/CVE/KEV records of ``CVE-Y`` all
get ``CVE-Y``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from secfoundry.corpus.prepare.text import entities

_HEAD_CHARS = 1500  # the first heading and alias line are looked for this far into the text
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+)$", re.M)
# a record's own id declared as a field near the top: "- **Rule**: `package_firewalld_removed`"
# (ComplianceAsCode renders its rule id so; different rules may share one title)
_RECORD_FIELD = re.compile(r"^\s*[-*]\s+\*\*(?:rule|rule id|id)\*\*:\s*`?([A-Za-z0-9][\w.:/-]{2,120})`?\s*$", re.I | re.M)
_ALIASES = re.compile(r"^\W*(?:aliases|also known as|cve ids?|related cves?)\W*[:|]\s*(.+)$", re.I | re.M)


def identity(text: str, title: str = "") -> frozenset[str]:
    """Ids in the title, the first Markdown heading and an ``Aliases:`` line near the top."""
    head = (text or "")[:_HEAD_CHARS]
    parts = [title or ""]
    m = _HEADING.search(head)
    if m:
        parts.append(m.group(1))
    first = head.lstrip().split("\n", 1)[0]
    if len(first) <= 200:  # a title-like first line ("CWE-79: Improper Neutralization ...")
        parts.append(first)
    a = _ALIASES.search(head)
    if a:
        parts.append(a.group(1))
    ids = entities(" \n ".join(parts))
    r = _RECORD_FIELD.search(head)
    return ids | {"RULE:" + r.group(1)} if r else ids


_H1 = re.compile(r"^\s{0,3}#\s+(.+)$", re.M)


def title_headings(text: str) -> frozenset[str]:
    """The document's title: its last top-level (``# ``) heading near the top, normalised (case,
    punctuation, spacing folded), as a one-element set (empty when it has none). A site's own
    header comes first and the article's title last, so a crawled copy keeps its original's
    title; two one-template pages about different things differ there ("Verify ownership of log
    files" / "Verify permissions of log files", two Sigma rules for one technique)."""
    last = ""
    for m in _H1.finditer((text or "")[:_HEAD_CHARS]):
        h = " ".join(re.findall(r"\w+", m.group(1).lower()))
        last = h or last
    return frozenset({last}) if last else frozenset()


def identity_key(ids: frozenset[str]) -> str:
    """One canonical id (see the module docstring); '' when the document has no identity."""
    if not ids:
        return ""
    for prefix in ("CVE-", "GHSA-"):
        sel = sorted(i for i in ids if i.startswith(prefix))
        if sel:
            return sel[0]
    return sorted(ids)[0]


@lru_cache(maxsize=1)
def _connector_names() -> frozenset[str]:
    try:
        from secfoundry.sources.base import registry

        return frozenset(registry())
    except Exception:  # a broken connector module must not stop dedup
        return frozenset()


def document_key(text: str, title: str = "", doc_id: str = "", source: str = "") -> str:
    """:func:`identity_key` of the text; else, for a connector record, ``record:<id>``; else ''."""
    k = identity_key(identity(text, title))
    if k:
        return k
    if doc_id and source in _connector_names():
        return "record:" + doc_id
    return ""
