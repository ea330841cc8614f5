"""Threat reports in: text, Markdown, HTML or PDF -> one plain text with sentence offsets.

Every span extract-ttps reports is a pair of character offsets into ``ReportText.text`` (the
text after extraction), so a caller can highlight evidence without re-extracting. Input is
untrusted: size limits, binary and non-UTF-8 input are refused with an error naming the input.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from secfoundry.core.errors import InputError, read_input_file

MAX_FILE_BYTES = 50 * 1024 * 1024   # a PDF may be large; its text is limited below
MAX_TEXT_CHARS = 2_000_000          # ~400 pages of prose
MAX_SENTENCE_CHARS = 1_200          # longer "sentences" (tables, dumps) are cut into pieces

FORMATS = ("auto", "text", "markdown", "html", "pdf")


@dataclass
class Sentence:
    start: int
    end: int
    text: str


@dataclass
class ReportText:
    text: str
    source: str  # file path or "<text>"
    format: str
    warnings: list[str] = field(default_factory=list)


def _guess_format(name: str, head: bytes) -> str:
    low = name.lower()
    if head.startswith(b"%PDF") or low.endswith(".pdf"):
        return "pdf"
    if low.endswith((".html", ".htm", ".xhtml")) or re.match(rb"\s*(<!doctype html|<html)", head[:200], re.I):
        return "html"
    if low.endswith((".md", ".markdown")):
        return "markdown"
    return "text"


def _decode(data: bytes, source: str, encoding: str | None) -> str:
    if b"\x00" in data[:65536]:
        raise InputError("binary input (NUL bytes); give a text, Markdown, HTML or PDF report", file=source)
    try:
        return data.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"not valid {encoding or 'UTF-8'} at byte {e.start}; pass --encoding (e.g. cp1252)",
                         file=source) from None
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}", file=source) from None


def html_to_text(html: str) -> str:
    """The page as Markdown (the project's one HTML converter, ``core.html``): scripts, styles,
    navigation and footers dropped, block structure kept, so offsets point into readable text."""
    from secfoundry.core.html import html_to_markdown

    return html_to_markdown(html, main_content=False).markdown.strip()


def pdf_to_text(data: bytes, source: str) -> tuple[str, list[str]]:
    """Text of every page (pypdf); a page that fails is reported and skipped, the others kept."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    warnings: list[str] = []
    try:
        reader = PdfReader(io.BytesIO(data))
        n = len(reader.pages)
    except (PdfReadError, ValueError, OSError) as e:
        raise InputError(f"not a readable PDF: {e}", file=source) from None
    pages = []
    for i in range(n):
        try:
            pages.append(reader.pages[i].extract_text() or "")
        except Exception as e:  # noqa: BLE001 - one broken page must not lose the others
            warnings.append(f"{source}: page {i + 1} skipped: {type(e).__name__}: {e}")
    return "\n\n".join(pages).strip(), warnings


def load_report(path: str | Path | None = None, *, text: str | None = None, data: bytes | None = None,
                format: str = "auto", encoding: str | None = None, name: str | None = None) -> ReportText:
    """A report from a file, raw bytes (``data`` + ``name``, e.g. an upload) or a string."""
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r} (one of {', '.join(FORMATS)})", file=str(path or name or "<text>"))
    if text is not None:
        source = name or "<text>"
        fmt = "text" if format == "auto" else format
        if fmt == "pdf":
            raise InputError("a PDF must be given as bytes or a file", file=source)
        raw_text = text
    warnings: list[str] = []
    if text is None:
        if data is None:
            if path is None:
                raise InputError("no report given")
            source = str(Path(path))
            data = read_input_file(path, MAX_FILE_BYTES)
        else:
            source = name or "<upload>"
            if len(data) > MAX_FILE_BYTES:
                raise InputError(f"input is {len(data):,} bytes; the limit is {MAX_FILE_BYTES:,}", file=source)
        fmt = _guess_format(source, data[:512]) if format == "auto" else format
        if fmt == "pdf":
            raw_text, warnings = pdf_to_text(data, source)
        else:
            raw_text = _decode(data, source, encoding)
    if fmt == "html":
        raw_text = html_to_text(raw_text)
    raw_text = raw_text.replace("\r\n", "\n").replace("\r", "\n")
    if not raw_text.strip():
        raise InputError("empty report (no text could be extracted)", file=source)
    if len(raw_text) > MAX_TEXT_CHARS:
        raise InputError(f"report text is {len(raw_text):,} characters; the limit is {MAX_TEXT_CHARS:,}",
                         file=source)
    return ReportText(raw_text, source, fmt, warnings)


# Sentence ends: . ! ? followed by space + capital/quote/digit, or blank lines / list items /
# Markdown headings. Abbreviations common in CTI ("e.g.", "i.e.", "etc.", "vs.", "Fig.") don't split.
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|cf|fig|Fig|al|Inc|Ltd|Corp|No|approx|ca|Mr|Dr|St|U\.S))\.$")
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*(?:[-*•#>|]|\d+[.)]\s))")


def sentences(text: str) -> list[Sentence]:
    """Sentences with offsets into ``text`` (stripped of surrounding space)."""
    out: list[Sentence] = []
    start = 0
    pieces: list[tuple[int, int]] = []
    for m in _BOUNDARY.finditer(text):
        if _ABBREV.search(text[max(start, m.start() - 8):m.start()]):
            continue
        pieces.append((start, m.start()))
        start = m.end()
    pieces.append((start, len(text)))
    for a, b in pieces:
        # single newlines inside a paragraph are soft wraps unless the line is a heading/table row
        for a2, b2 in _split_lines(text, a, b):
            while a2 < b2 and text[a2].isspace():
                a2 += 1
            while b2 > a2 and text[b2 - 1].isspace():
                b2 -= 1
            if b2 - a2 < 3:
                continue
            while b2 - a2 > MAX_SENTENCE_CHARS:
                cut = text.rfind(" ", a2, a2 + MAX_SENTENCE_CHARS)
                cut = cut if cut > a2 + MAX_SENTENCE_CHARS // 2 else a2 + MAX_SENTENCE_CHARS
                out.append(Sentence(a2, cut, text[a2:cut]))
                a2 = cut
                while a2 < b2 and text[a2].isspace():
                    a2 += 1
            if b2 > a2:
                out.append(Sentence(a2, b2, text[a2:b2]))
    return out


def _split_lines(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """Split a piece at newlines that end a heading-like line (short, no final punctuation)."""
    out = []
    s = a
    for m in re.finditer(r"\n", text[a:b]):
        pos = a + m.start()
        line = text[s:pos].strip()
        if line and (len(line) < 80 and not line.endswith((",", ";", ":", "-")) and line[-1:] not in ".!?"
                     or line.startswith(("#", "|", "-", "*", "•"))):
            out.append((s, pos))
            s = pos + 1
    out.append((s, b))
    return out
