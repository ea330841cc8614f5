"""The date of a corpus document, per source, for the decontamination date cutoff.

Which metadata field dates a document depends on its source (the connectors copy their
records' dates into document metadata, ``sources.base.document_of``; the WARC reader records
``WARC-Date`` and the HTTP ``Last-Modified`` header):

=================  ==========================================  ==============================
source             ``basis: published`` (first seen, default)  ``basis: modified`` (last change)
=================  ==========================================  ==============================
cve                ``published`` (cveMetadata.datePublished)   ``updated`` (dateUpdated)
nvd                ``published``                               ``last_modified``
kev                ``date_added`` (dateAdded)                  ``date_added``
attack             ``created``                                 ``modified``
capec              ``modified`` (the only date it carries)     ``modified``
osv (PyPA, GHSA,   ``published``                               ``modified``
RustSec)
sigma              ``date``                                    ``modified``
d3fend             ``created``                                 ``created``
crawl / warc       ``last_modified`` (Last-Modified header),   ``last_modified``, else
                   else ``warc_date`` (fetch time)             ``warc_date``
anything else      the first of published/date_published/      the first of modified/
                   datePublished/date_added/created/date,      last_modified/updated, else the
                   else of the modified fields (conservative:  published basis
                   dated by its last change)
=================  ==========================================  ==============================

A document with no usable date is kept (and counted as undated) unless ``undated: drop``.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import Any

PUBLISHED = ("published", "date_published", "datePublished", "date_added", "dateAdded", "created", "date")
MODIFIED = ("modified", "last_modified", "lastModified", "updated", "dateUpdated")
WEB = ("last_modified", "warc_date")

_ISO = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})")


def iso_date(value: Any) -> str | None:
    """``YYYY-MM-DD`` from ISO 8601 / ``YYYY/MM/DD`` / RFC 2822 (HTTP dates); None if unparseable."""
    if not isinstance(value, str) or not value.strip():
        return None
    v = value.strip()
    m = _ISO.match(v)
    if m:
        y, mo, d = (int(x) for x in m.groups())
        if 1 <= mo <= 12 and 1 <= d <= 31:
            return f"{y:04d}-{mo:02d}-{d:02d}"
        return None
    try:
        return parsedate_to_datetime(v).date().isoformat()
    except (TypeError, ValueError, IndexError):
        return None


def document_date(source: str, metadata: dict[str, Any], basis: str = "published") -> tuple[str | None, str]:
    """``(YYYY-MM-DD or None, the metadata field it came from)`` for one document."""
    web = metadata.get("collect") in ("warc", "crawl") or "warc_date" in metadata
    if web:
        fields: tuple[str, ...] = WEB
    elif basis == "modified":
        fields = MODIFIED + PUBLISHED
    else:
        fields = PUBLISHED + MODIFIED  # a record with only a last-change date is dated by it
    for f in fields:
        d = iso_date(metadata.get(f))
        if d:
            return d, f
    return None, ""
