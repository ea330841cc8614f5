"""HTML → Markdown: code blocks byte-exact, tables, nested lists, boilerplate removed."""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest

from secfoundry.corpus.process.extract import ExtractStep, html_to_markdown, looks_like_html
from secfoundry.core.documents import Document

PAGES = Path(__file__).parent / "data" / "html"
BOILERPLATE = ["Accept all cookies", "Subscribe to our newsletter", "Privacy policy", "Popular posts",
               "Share on Twitter", "Careers", "All rights reserved", "webinar on cloud cost",
               "You may also like", "Great post, thanks", "Vendor home", "Follow us on social media"]


def pre_lines(html: str) -> list[str]:
    """Every non-empty line of every <pre> as the browser shows it (code cells only)."""
    root = lxml.html.document_fromstring(html)
    out = []
    for pre in root.iter("pre"):
        if pre.xpath("ancestor::td[contains(@class,'linenos')]"):
            continue  # line-number gutter
        out += [ln for ln in pre.text_content().split("\n") if ln.strip()]
    return out


@pytest.mark.parametrize("page", sorted(p.name for p in PAGES.glob("*.html")))
def test_code_lines_preserved_exactly(page):
    html = (PAGES / page).read_text()
    md = html_to_markdown(html).markdown
    md_lines = set(md.split("\n"))
    # lines inside a nested list item are indented by the list; compare stripped of that prefix
    md_stripped = {ln[3:] if ln.startswith("   ") else ln for ln in md_lines} | {ln.strip() for ln in md_lines}
    missing = [ln for ln in pre_lines(html) if ln not in md_lines and ln not in md_stripped]
    assert not missing, missing


@pytest.mark.parametrize("page", sorted(p.name for p in PAGES.glob("*.html")))
def test_boilerplate_removed(page):
    md = html_to_markdown((PAGES / page).read_text()).markdown
    assert not [b for b in BOILERPLATE if b.lower() in md.lower()]


def test_blog_structure():
    md = html_to_markdown((PAGES / "blog_python_powershell.html").read_text()).markdown
    assert md.startswith("# Hunting LSASS access with Sysmon")
    assert "```powershell\n$cfg = " in md
    assert "```python\nimport json\n" in md
    assert "    Write-Error \"missing config\"" in md  # indentation intact
    assert "`lsass.exe`" in md and "**Sysmon Event ID 10**" in md
    # nested lists keep their depth
    assert "- Unsigned binaries opening LSASS\n  - especially from `C:\\Users\\Public\\`" in md
    assert "    - `%TEMP%`" in md
    assert "1. Collect the events.\n2. Run the script." in md
    # a <pre> inside a list item stays inside the item
    assert "  ```\n  rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 624 C:\\Temp\\out.dmp full\n  ```" in md


def test_rules_and_tables():
    md = html_to_markdown((PAGES / "rules_yara_sigma.html").read_text()).markdown
    assert "```yaml\ntitle: FakeUpdate Loader Spawning PowerShell" in md
    assert "        uint16(0) == 0x5A4D and filesize < 2MB and (all of ($s*) or $h1)" in md
    ioc = html_to_markdown((PAGES / "ioc_table.html").read_text()).markdown
    assert "| Type | Indicator | Description |\n|---|---|---|" in ioc
    assert "| Domain | update-check[.]example[.]net | C2 over HTTPS |" in ioc
    assert "Staging server \\| port 8443" in ioc  # pipes inside cells escaped
    assert "| Persistence | T1547.001 Registry Run Keys |" in ioc


def test_highlighter_table_is_code_and_dl():
    md = html_to_markdown((PAGES / "highlight_table.html").read_text()).markdown
    assert "1\n2\n3" not in md  # gutter dropped
    assert "```\ndef decode_config(blob: bytes) -> bytes:\n    for key in (0x69, 0x2e):" in md
    adv = html_to_markdown((PAGES / "advisory_nested.html").read_text()).markdown
    assert "- **CVE**: CVE-2024-12345" in adv
    assert "   ```nginx\n   location /download {\n       if ($arg_file ~* \"\\.\\./\") {" in adv
    assert "> We thank the reporter" in adv


def test_extract_step_only_touches_html():
    step = ExtractStep()
    md_doc = Document(id="a", text="# Title\n\nplain *markdown* text", source="crawl")
    assert step(md_doc).doc.text == md_doc.text
    html_doc = Document(id="b", text=(PAGES / "ioc_table.html").read_text(), source="crawl",
                        metadata={"content_type_http": "text/html"})
    out = step(html_doc).doc
    assert out.text.startswith("# Indicators of compromise") and out.metadata["extracted_from"] == "html"
    assert out.title == "Indicators of compromise: Operation Night Owl"
    empty = step(Document(id="c", text="<html><body><script>x()</script></body></html>", source="crawl",
                          metadata={"mime": "text/html"}))
    assert empty.doc is None and empty.reason == "extract:empty"


def test_bad_html_never_raises():
    for junk in ["<p>unclosed <b>bold <pre>code\n  indented", "<<<>>>", "<?xml version='1.0'?><html><p>x</p></html>",
                 "\x00\x01<div>", b"<html><body><p>caf\xc3\xa9</p></body></html>"]:
        html_to_markdown(junk)
    assert looks_like_html("<html><body><p>a</p></body></html>")
    assert not looks_like_html("Use `<div>` elements for layout.")


def test_markdown_quoting_html_is_not_extracted():
    """XSS cheat sheets are Markdown full of tags; they must pass through untouched."""
    md = ("# XSS Filter Evasion\n\nTry these payloads:\n\n```html\n<div><p>x</p></div>\n<a href=x>y</a>\n"
          "<table><tr><td>z</td></tr></table>\n```\n\nAnd `</span>` inline, <b>bold</b> raw tag.\n")
    assert not looks_like_html(md)
    step = ExtractStep()
    assert step(Document(id="m", text=md, source="crawl")).doc.text == md
    snippet = "<p>one</p><p>two</p><p>three</p>"  # a bare fragment still counts as HTML
    assert looks_like_html(snippet)
    owasp = Document(id="o", text="<div>a</div><div>b</div><div>c</div>", source="owasp")
    assert step(owasp).doc.text == owasp.text  # connectors render Markdown
