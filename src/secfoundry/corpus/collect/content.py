"""Turning fetched bytes into text: charset detection for HTML/plain text, PDF text via pypdf.

Shared by the crawler and the WARC reader so a replayed crawl yields exactly what a live one did.
"""

from __future__ import annotations

import io
import re

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)

HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown")
PDF_TYPES = ("application/pdf", "application/x-pdf")


def mime_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def charset_of(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        k, _, v = part.partition("=")
        if k.strip().lower() == "charset" and v.strip():
            return v.strip().strip("\"'")
    return None


def decode_text(body: bytes, content_type: str | None = None) -> str:
    """Header charset > <meta charset> > UTF-8 (BOM-aware) > cp1252, never raising."""
    candidates = []
    cs = charset_of(content_type)
    if cs:
        candidates.append(cs)
    m = _META_CHARSET.search(body[:4096])
    if m:
        candidates.append(m.group(1).decode("ascii", "ignore"))
    candidates.append("utf-8-sig")
    for enc in candidates:
        try:
            return body.decode(enc)
        except (LookupError, UnicodeDecodeError):
            continue
    return body.decode("cp1252", errors="replace")


def pdf_text(body: bytes) -> str:
    """Plain text of a PDF, pages separated by blank lines (pypdf; raises on broken files)."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(body))
    pages = [(p.extract_text() or "").strip() for p in reader.pages]
    return "\n\n".join(p for p in pages if p).strip()


def to_text(body: bytes, content_type: str | None) -> tuple[str, str, str] | None:
    """(text, mime, format) for a supported payload, else None. format: html | text | pdf."""
    mime = mime_of(content_type)
    if mime in HTML_TYPES:
        return decode_text(body, content_type), mime, "html"
    if mime in TEXT_TYPES:
        return decode_text(body, content_type), mime, "text"
    if mime in PDF_TYPES or body[:5] == b"%PDF-":
        return pdf_text(body), "application/pdf", "pdf"
    return None
