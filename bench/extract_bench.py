"""HTML → Markdown fidelity: secfoundry's extractor vs plain trafilatura on security test pages.

Pages: tests/corpus/process/data/html/*.html (a blog post with indented Python and PowerShell,
YARA + Sigma rules in <pre>, an IOC table, an advisory with nested lists/dl/code, a
Pygments line-numbered code table; all with nav/footer/sidebar boilerplate).

Measures per page and in total:
* code lines preserved exactly (every non-empty line of every <pre>, indentation included, must
  appear as a line of the output — list-item indentation is allowed);
* table cells preserved (each <td>/<th> text appears in the output);
* boilerplate leaked (known nav/footer/sidebar phrases found in the output);
* time per page.

Run: .venv/bin/python bench/extract_bench.py
"""

from __future__ import annotations

import time
from pathlib import Path

import lxml.html

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "tests" / "corpus" / "process" / "data" / "html"
BOILERPLATE = ["Accept all cookies", "Subscribe to our newsletter", "Privacy policy", "Popular posts",
               "Share on Twitter", "Careers", "All rights reserved", "webinar on cloud cost",
               "You may also like", "Great post, thanks", "Vendor home", "Follow us on social media"]


def expected(html: str) -> tuple[list[str], list[str]]:
    root = lxml.html.document_fromstring(html)
    code: list[str] = []
    for pre in root.iter("pre"):
        if pre.xpath("ancestor::td[contains(@class,'linenos')]"):
            continue
        code += [ln for ln in pre.text_content().split("\n") if ln.strip()]
    cells = []
    for td in root.xpath("//td|//th"):
        if td.xpath(".//pre") or "linenos" in (td.get("class") or "") or "code" in (td.get("class") or ""):
            continue
        t = " ".join(td.text_content().split())
        if t:
            cells.append(t)
    return code, cells


def score(out: str, code: list[str], cells: list[str]) -> tuple[int, int, int]:
    lines = set(out.split("\n"))
    relaxed = lines | {ln.strip() for ln in lines} | {ln[2:] for ln in lines} | {ln[3:] for ln in lines}
    code_ok = sum(1 for ln in code if ln in lines or (ln.startswith(" ") is False and ln in relaxed)
                  or any(x.endswith(ln) and x[: len(x) - len(ln)].strip() == "" for x in lines))
    flat = " ".join(out.split()).replace("\\|", "|")
    cells_ok = sum(1 for c in cells if c in flat)
    leaked = sum(1 for b in BOILERPLATE if b.lower() in out.lower())
    return code_ok, cells_ok, leaked


def main() -> None:
    import trafilatura

    from secfoundry.core.html import html_to_markdown

    extractors = {
        "secfoundry": lambda h: html_to_markdown(h).markdown,
        "trafilatura (markdown, tables+formatting)": lambda h: trafilatura.extract(
            h, output_format="markdown", include_tables=True, include_formatting=True, include_comments=False) or "",
        "trafilatura (default txt)": lambda h: trafilatura.extract(h) or "",
    }
    totals = {k: [0, 0, 0, 0, 0, 0.0] for k in extractors}  # code ok, code n, cells ok, cells n, leaked, secs
    print("| page | extractor | code lines exact | table cells | boilerplate leaked |")
    print("|---|---|---:|---:|---:|")
    for page in sorted(PAGES.glob("*.html")):
        html = page.read_text()
        code, cells = expected(html)
        for name, fn in extractors.items():
            t0 = time.perf_counter()
            out = fn(html)
            dt = time.perf_counter() - t0
            c_ok, t_ok, leaked = score(out, code, cells)
            tot = totals[name]
            tot[0] += c_ok
            tot[1] += len(code)
            tot[2] += t_ok
            tot[3] += len(cells)
            tot[4] += leaked
            tot[5] += dt
            print(f"| {page.name} | {name} | {c_ok}/{len(code)} | {t_ok}/{len(cells)} | {leaked} |")
    print()
    print("| extractor | code lines exact | table cells | boilerplate phrases leaked | ms/page |")
    print("|---|---:|---:|---:|---:|")
    n_pages = len(list(PAGES.glob("*.html")))
    for name, (c_ok, c_n, t_ok, t_n, leaked, secs) in totals.items():
        print(f"| {name} | {c_ok}/{c_n} ({100 * c_ok / c_n:.1f}%) | {t_ok}/{t_n} ({100 * t_ok / t_n:.1f}%) | "
              f"{leaked} | {1000 * secs / n_pages:.1f} |")


if __name__ == "__main__":
    main()
