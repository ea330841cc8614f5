"""HTML → Markdown, the one converter: whole pages (``html_to_markdown``) and the HTML
fragments upstream records embed in descriptions (``fragment_to_markdown``: CAPEC, CTID,
ComplianceAsCode). Over 400 lines because the page renderer is one DOM walk (headings, lists,
code, tables) that reads best in one place.

Pages keep what security pages are made of: code, commands, rules, tables.

Generic extractors (trafilatura, readability ports) flatten ``<pre>`` blocks, drop their
indentation and mangle tables of IOCs. This module is a small lxml DOM walk written for that:

1. boilerplate removal — ``script/style/nav/footer/aside/form...`` and elements whose class/id
   names say "menu", "sidebar", "cookie", "share", ... (never one that holds the main text);
2. main-content detection — ``<article>``/``<main>``/``role=main`` when present, else the
   container that collects most non-link paragraph text (readability-style scoring);
3. rendering — headings, paragraphs, nested lists, fenced code blocks with the language hint
   from ``class="language-x"`` (text copied byte for byte), inline code, pipe tables,
   blockquotes, definition lists.

It is hand-written because no maintained library does both main-content detection and
faithful code/table rendering (measured in BENCHMARKS.md against trafilatura).
"""

from __future__ import annotations

import re
import html as _html
from dataclasses import dataclass

import lxml.html
from lxml import etree


DROP_TAGS = {
    "script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed",
    "form", "button", "select", "input", "textarea", "nav", "footer", "aside", "head", "link",
    "meta", "dialog", "menu",
}
# class/id tokens that mark boilerplate containers
BOILERPLATE_RE = re.compile(
    r"(?:^|[\s_-])(nav|navbar|navigation|menu|sidebar|side-bar|footer|cookie|consent|banner|"
    r"breadcrumbs?|share|sharing|social|related|recommend\w*|newsletter|subscribe|signup|"
    r"advert\w*|ads?|promo|popup|modal|comments?|disqus|pagination|pager|skip-link|toc-mobile|"
    r"site-header|masthead|author-bio|tags?-list)(?:$|[\s_-])",
    re.I,
)
BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "header", "pre", "table", "ul", "ol", "dl",
    "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "figure", "figcaption", "details",
    "summary", "address", "center", "body", "html", "li", "dt", "dd", "tr", "td", "th",
    "thead", "tbody", "tfoot", "caption",
}
LANG_RE = re.compile(r"(?:^|\s)(?:language|lang|highlight-source|highlight|brush|sourceCode)[-:_]\s*([A-Za-z0-9_+#.-]+)")
_WS = re.compile(r"[ \t\r\n\f\v\u00a0]+")


def looks_like_html(text: str) -> bool:
    """An HTML page, not Markdown that quotes HTML (XSS cheat sheets are full of tags)."""
    head = text[:2000].lstrip("\ufeff \t\r\n").lower()
    if head.startswith(("<!doctype html", "<html")) or (head.startswith("<?xml") and "<html" in text[:5000].lower()):
        return True
    if re.search(r"^(`{3,}|~{3,})", text[:20000], re.M):
        return False  # fenced Markdown code: a Markdown document
    lines = [ln.strip() for ln in text[:20000].split("\n") if ln.strip()]
    tag_lines = sum(1 for ln in lines if ln.startswith("<"))
    closing = len(re.findall(r"</(?:p|div|pre|table|li|span|a|h[1-6]|body|td|tr)>", text[:20000], re.I))
    return head.startswith("<") and closing >= 3 and tag_lines >= 0.3 * max(len(lines), 1)


def _classid(el) -> str:
    return f"{el.get('class', '')} {el.get('id', '')}"


def _is_boilerplate(el) -> bool:
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in ("body", "html", "main", "article", "pre", "code", "table"):
        return False
    if el.get("role") in ("navigation", "banner", "contentinfo", "complementary", "search"):
        return True
    if el.get("aria-hidden") == "true" or "display:none" in (el.get("style") or "").replace(" ", ""):
        return True
    return bool(BOILERPLATE_RE.search(_classid(el)))


def clean_tree(root) -> None:
    """Remove scripts, navigation and other boilerplate in place."""
    for el in list(root.iter(etree.Comment, etree.ProcessingInstruction)):
        _drop(el)
    for el in list(root.iter()):
        if not isinstance(el.tag, str) or el.getparent() is None:
            continue
        tag = el.tag.lower()
        if tag in DROP_TAGS or (tag == "header" and el.xpath("ancestor::article|ancestor::main") == []
                                and not el.xpath(".//h1")):
            _drop(el)
        elif _is_boilerplate(el) and not el.xpath(".//pre|.//article|.//main"):
            _drop(el)


def _drop(el) -> None:
    """Remove an element but keep its tail text."""
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail
    if tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(el)


def _text_len(el, links: bool = True) -> int:
    n = len(_WS.sub(" ", el.text_content()).strip())
    if not links:
        n -= sum(len(a.text_content().strip()) for a in el.iter("a"))
    return max(n, 0)


def find_main(root):
    """The element that holds the main content."""
    body = root.find(".//body")
    body = body if body is not None else root
    for xp in ("//article", "//main", "//*[@role='main']", "//*[@itemprop='articleBody']"):
        cands = root.xpath(xp)
        if cands:
            best = max(cands, key=_text_len)
            if _text_len(best) >= 0.3 * max(_text_len(body), 1):
                return best
    scores: dict = {}
    for el in body.iter("p", "pre", "table", "ul", "ol", "blockquote", "h2", "h3", "dl"):
        n = _text_len(el, links=False)
        if el.tag == "pre":
            n *= 2  # code is the point of security pages; weigh it up
        parent = el.getparent()
        if parent is None:
            continue
        scores[parent] = scores.get(parent, 0.0) + n
        gp = parent.getparent()
        if gp is not None:
            scores[gp] = scores.get(gp, 0.0) + n / 2
    if not scores:
        return body
    best = max(scores, key=scores.get)
    # Fall back to the whole body when the best container holds only part of the text.
    if _text_len(best, links=False) < 0.5 * _text_len(body, links=False):
        return body
    return best


# --- rendering -------------------------------------------------------------------------------

def _code_lang(el) -> str:
    for node in [el, *el.iter("code")]:
        m = LANG_RE.search(node.get("class", "") or "")
        if m and m.group(1).lower() not in ("none", "plaintext", "text", "highlight", "source"):
            return m.group(1).lower()
        if node.get("data-lang"):
            return node.get("data-lang").lower()
    parent = el.getparent()
    if parent is not None:
        m = LANG_RE.search(parent.get("class", "") or "")
        if m:
            return m.group(1).lower()
    return ""


def _pre_text(el) -> str:
    """Text of a <pre> exactly as displayed: <br> is a newline, nothing is collapsed."""
    parts: list[str] = []

    def walk(node):
        if node.tag == "br":
            parts.append("\n")
        elif isinstance(node.tag, str):
            if node.text:
                parts.append(node.text)
            for ch in node:
                walk(ch)
        if node.tail and node is not el:
            parts.append(node.tail)

    walk(el)
    text = "".join(parts)
    if text.startswith("\n"):  # HTML ignores one newline right after <pre>
        text = text[1:]
    return text.rstrip("\n ")


def fence(code: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", code)), default=2)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{code}\n{ticks}"


class _Renderer:
    def __init__(self, keep_links: bool):
        self.keep_links = keep_links

    # inline ------------------------------------------------------------------------------
    def inline(self, el) -> str:
        out: list[str] = []
        if el.text:
            out.append(el.text)
        for ch in el:
            out.append(self.inline_el(ch))
            if ch.tail:
                out.append(ch.tail)
        return "".join(out)

    def inline_el(self, el) -> str:
        if not isinstance(el.tag, str):
            return ""
        tag = el.tag.lower()
        if tag == "br":
            return "\n"
        if tag in ("code", "kbd", "samp", "tt", "var") :
            text = el.text_content()
            if not text.strip():
                return text
            text = _WS.sub(" ", text) if "\n" not in text.strip() else text.strip()
            ticks = "``" if "`" in text else "`"
            pad = " " if text.startswith("`") or text.endswith("`") else ""
            return f"{ticks}{pad}{text}{pad}{ticks}"
        if tag == "img":
            return ""
        inner = self.inline(el)
        if tag in ("strong", "b") and inner.strip():
            return f"**{inner.strip()}**"
        if tag in ("em", "i") and inner.strip():
            return f"*{inner.strip()}*"
        if tag == "a" and self.keep_links and el.get("href", "").startswith(("http", "/")) and inner.strip():
            return f"[{inner.strip()}]({el.get('href')})"
        if tag in BLOCK_TAGS:  # a block inside inline context: separate it by spaces
            return f" {inner} "
        return inner

    @staticmethod
    def norm(text: str) -> str:
        lines = [_WS.sub(" ", ln).strip() for ln in text.split("\n")]
        return "  \n".join(ln for ln in lines if ln)

    # blocks ------------------------------------------------------------------------------
    def blocks(self, el) -> list[str]:
        """Render the children of a block container as a list of Markdown blocks."""
        out: list[str] = []
        buf: list[str] = []

        def flush():
            text = self.norm("".join(buf))
            if text:
                out.append(text)
            buf.clear()

        if el.text:
            buf.append(el.text)
        for ch in el:
            tag = ch.tag.lower() if isinstance(ch.tag, str) else ""
            if tag in BLOCK_TAGS or (tag == "code" and self._is_code_block(ch)):
                flush()
                out.extend(self.block(ch))
            elif tag:
                buf.append(self.inline_el(ch))
            if ch.tail:
                buf.append(ch.tail)
        flush()
        return out

    @staticmethod
    def _is_code_block(el) -> bool:
        return "\n" in (el.text_content() or "").strip()

    def block(self, el) -> list[str]:
        tag = el.tag.lower()
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            text = self.norm(self.inline(el)).replace("  \n", " ")
            return [f"{'#' * int(tag[1])} {text}"] if text else []
        if tag == "pre" or tag == "code":
            code = _pre_text(el)
            return [fence(code, _code_lang(el))] if code.strip() else []
        if tag == "hr":
            return ["---"]
        if tag in ("ul", "ol"):
            return [self.list_(el)] if len(el) else []
        if tag == "table":
            return self.table(el)
        if tag == "blockquote":
            inner = "\n\n".join(self.blocks(el))
            return ["\n".join(f"> {ln}" if ln else ">" for ln in inner.split("\n"))] if inner else []
        if tag == "dl":
            return self.dl(el)
        return self.blocks(el)

    def list_(self, el, depth: int = 0) -> str:
        lines: list[str] = []
        ordered = el.tag.lower() == "ol"
        start = int(el.get("start", "1")) if (el.get("start") or "").isdigit() else 1
        i = start
        for li in el:
            if not isinstance(li.tag, str) or li.tag.lower() != "li":
                continue
            marker = f"{i}." if ordered else "-"
            i += 1
            indent = " " * (len(marker) + 1)
            sub_blocks: list[str] = []
            nested: list[str] = []
            buf: list[str] = [li.text or ""]
            for ch in li:
                tag = ch.tag.lower() if isinstance(ch.tag, str) else ""
                if tag in ("ul", "ol"):
                    nested.append(self.list_(ch, depth + 1))
                elif tag in BLOCK_TAGS or (tag == "code" and self._is_code_block(ch)):
                    sub_blocks.extend(self.block(ch))
                elif tag:
                    buf.append(self.inline_el(ch))
                if ch.tail:
                    buf.append(ch.tail)
            head = self.norm("".join(buf))
            if not head and sub_blocks:
                head = sub_blocks.pop(0)
            first, *rest = (head or "").split("\n") or [""]
            lines.append(f"{marker} {first}".rstrip())
            lines.extend(indent + ln if ln else "" for ln in rest)
            for b in sub_blocks:
                lines.append("")
                lines.extend(indent + ln if ln else "" for ln in b.split("\n"))
            for n in nested:
                lines.extend(indent + ln if ln else "" for ln in n.split("\n"))
        return "\n".join(lines)

    def dl(self, el) -> list[str]:
        lines: list[str] = []
        for ch in el:
            tag = ch.tag.lower() if isinstance(ch.tag, str) else ""
            text = " ".join(b.replace("\n", " ") for b in self.blocks(ch)).strip()
            if tag == "dt" and text:
                lines.append(f"- **{text}**")
            elif tag == "dd" and text:
                if lines and lines[-1].startswith("- **") and lines[-1].endswith("**"):
                    lines[-1] += f": {text}"
                else:
                    lines.append(f"  {text}")
        return ["\n".join(lines)] if lines else []

    def table(self, el) -> list[str]:
        # Syntax-highlighter tables (line-number gutter + code cell) are code, not data.
        pres = el.xpath(".//pre")
        if pres and el.xpath(".//td[contains(@class,'code')]|.//td[contains(@class,'gutter')]|"
                             ".//td[contains(@class,'linenos')]"):
            code_cells = el.xpath(".//td[contains(@class,'code')]//pre") or pres[-1:]
            return [fence(_pre_text(p), _code_lang(p) or _code_lang(el)) for p in code_cells]
        rows = [tr for tr in el.iter("tr") if self._own_table(tr, el)]
        grid: list[list[str]] = []
        header_rows = 0
        for tr in rows:
            cells: list[str] = []
            for td in tr:
                if not isinstance(td.tag, str) or td.tag.lower() not in ("td", "th"):
                    continue
                parts = self.blocks(td)
                text = " ".join(p.replace("\n", " ") for p in parts).replace("|", "\\|").strip()
                span = int(td.get("colspan", "1")) if (td.get("colspan") or "").isdigit() else 1
                cells.extend([text] + [""] * (max(1, min(span, 50)) - 1))
            if cells:
                if not grid and all(td.tag.lower() == "th" for td in tr if isinstance(td.tag, str)):
                    header_rows = 1
                grid.append(cells)
        if not grid:
            return []
        width = max(len(r) for r in grid)
        if width == 1:  # layout table with one column: just its content
            return [r[0] for r in grid if r[0]]
        grid = [r + [""] * (width - len(r)) for r in grid]
        header = grid[0] if header_rows else [""] * width
        body = grid[1:] if header_rows else grid
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * width) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        out = []
        cap = el.find("caption")
        if cap is not None and cap.text_content().strip():
            out.append(self.norm(cap.text_content()))
        out.append("\n".join(lines))
        return out

    @staticmethod
    def _own_table(tr, table) -> bool:
        p = tr.getparent()
        while p is not None and p.tag != "table":
            p = p.getparent()
        return p is table


@dataclass
class Extracted:
    markdown: str
    title: str = ""
    lang: str = ""  # <html lang=...>, a hint only


def html_to_markdown(html: str | bytes, *, main_content: bool = True, keep_links: bool = False) -> Extracted:
    """Convert an HTML page to Markdown, keeping code blocks, tables and lists intact."""
    if isinstance(html, bytes):
        root = lxml.html.document_fromstring(html)
    else:
        # lxml refuses str with an XML encoding declaration
        html = re.sub(r"^\s*<\?xml[^>]*>", "", html)
        if not html.strip():
            return Extracted("")
        root = lxml.html.document_fromstring(html)
    title_el = root.find(".//title")
    title = _WS.sub(" ", title_el.text_content()).strip() if title_el is not None else ""
    lang = (root.get("lang") or "").split("-")[0].lower()
    clean_tree(root)
    body = root.find(".//body")
    node = find_main(root) if main_content else (body if body is not None else root)
    blocks = _Renderer(keep_links).block(node) if node.tag in ("pre", "table", "ul", "ol") \
        else _Renderer(keep_links).blocks(node)
    md = "\n\n".join(b for b in blocks if b.strip())
    if title and not md.lstrip().startswith("# "):
        h1 = root.xpath("//h1")
        if not h1:
            md = f"# {title}\n\n{md}"
    return Extracted(md.strip() + "\n" if md.strip() else "", title, lang)


# -- fragments: the tags upstream records use inside descriptions --------------------------------
_FRAGMENT_RULES: tuple[tuple[re.Pattern, object], ...] = tuple((re.compile(p, re.I | re.S), r) for p, r in (
    (r"</?xhtml:", lambda m: m.group(0).replace("xhtml:", "")),  # CAPEC's namespaced XHTML
    (r"<pre[^>]*>\s*(.*?)\s*</pre>", lambda m: "\n```\n" + m.group(1).strip() + "\n```\n"),
    (r"<(tt|code)>(.*?)</\1>", r"`\2`"),
    (r"<h([1-6])[^>]*>\s*", lambda m: "\n\n" + "#" * int(m.group(1)) + " "),
    (r"</h[1-6]>", "\n\n"),
    (r"<li[^>]*>\s*", "\n- "),
    (r"</li>", "\n"),
    (r"<br\s*/?>", "\n"),
    (r"</?(?:p|div|ul|ol|table|tbody|tr)(?:\s[^>]*)?/?>", "\n"),
    (r"<th[^>]*>", "\n"),
    (r"<td[^>]*>", "\n- "),
    (r"<!(?:--.*?--|[^>]*)>", ""),  # comments, CDATA markers, doctypes
    (r"<(b|strong)>(.*?)</\1>", lambda m: f"**{m.group(2).strip()}**" + (" " if m.group(2)[-1:].isspace() else "")),
    (r"</?b>", "**"),
    (r"<(i|em)>(.*?)</\1>", r"*\2*"),
    (r"<a\s+href=\"([^\"]*)\"[^>]*>(.*?)</a>", r"[\2](\1)"),
    (r"</?[a-zA-Z][^>]*>", ""),
))


def fragment_to_markdown(fragment: str | None, *, tight: bool = False) -> str:
    """An HTML snippet from an upstream record (paragraphs, lists, headings, tables, ``pre``,
    ``tt``/``code``, bold/italic, links) as Markdown; text without tags is only unescaped.

    ``tight``: squeeze spaces on each line (outside code blocks) and drop the blank lines before
    list items (CAPEC's layout-heavy XHTML reads best that way).
    """
    if not fragment:
        return ""
    if "<" not in fragment:
        return _html.unescape(fragment).strip()
    s = fragment
    for pattern, repl in _FRAGMENT_RULES:
        s = pattern.sub(repl, s)
    s = _html.unescape(s)
    if tight:
        out, in_code = [], False
        for line in s.split("\n"):
            if line.strip() == "```":
                in_code = not in_code
                out.append("```")
            else:
                out.append(line if in_code else re.sub(r"[ \t]+", " ", line).strip())
        s = "\n".join(out)
        s = re.sub(r"^- *\n+", "- ", s, flags=re.M)
        s = re.sub(r"\n{2,}(?=- )", "\n", s)
    return re.sub(r"\n{3,}", "\n\n", s).strip()
