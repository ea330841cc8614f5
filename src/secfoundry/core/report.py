"""The one report shell: self-contained HTML pages rendered from jinja2 templates, plus the
Markdown twins of the same tables.

A stage builds its content as typed pieces (``Table``, ``Figure``, key/value ``facts``) and
renders a template that extends ``base.html.j2``::

    from secfoundry.core.report import Figure, Table, render_html

    page = render_html("corpus_report.html.j2", package="secfoundry.corpus",
                       title="corpus report", tables=..., figures=...)

Templates are looked up in ``<package>/templates/`` first, then in ``core/templates/`` (the base
page and the macros ``table``, ``figure``, ``facts``, ``warnings`` in ``macros.html.j2``).
Autoescaping is on: untrusted text (document excerpts, drop reasons, URLs) is always escaped.
Filters: ``n`` (thousands), ``bytes``, ``pct(total)``, ``png_uri``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass
class Table:
    """A titled table of already formatted cells; numeric-looking cells are right-aligned."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Figure:
    name: str  # file stem when written beside a Markdown report
    title: str
    png: bytes


@dataclass
class Page:
    """What ``base.html.j2`` needs besides the body blocks."""

    title: str
    heading: str = ""
    css: str = ""  # extra CSS appended to the base style
    extra: dict = field(default_factory=dict)


def fmt_n(v: int | float | None) -> str:
    return "–" if v is None else f"{int(v):,}"


def fmt_bytes(v: int | float | None) -> str:
    if v is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return f"{v:,.0f} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1024
    return str(v)


def fmt_pct(a: int | float | None, b: int | float | None) -> str:
    return "–" if a is None or not b else f"{100 * a / b:.1f}%"


def png_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, so that the page stays one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def is_num(cell: str) -> bool:
    """Whether a formatted cell reads as a number ("1,234", "73.9%", "≈12 (est.)")."""
    t = cell.replace(",", "").replace("%", "").replace("≈", "").replace(".", "").split(" ")[0]
    return t.isdigit()


@lru_cache(maxsize=None)
def _env(package: str | None):
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if package and package != "secfoundry.core":
        loaders.append(jinja2.PackageLoader(package, "templates"))
    loaders.append(jinja2.PackageLoader("secfoundry.core", "templates"))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters.update(n=fmt_n, bytes=fmt_bytes, pct=fmt_pct, png_uri=png_uri)
    env.tests["num"] = is_num
    return env


def render_html(template: str, *, package: str | None = None, **context) -> str:
    """Render ``template`` (from ``<package>/templates/`` or ``core/templates/``)."""
    return _env(package).get_template(template).render(**context)


def md_table(t: Table, level: int = 2) -> str:
    """The Markdown twin of a ``Table`` (pipes and newlines in cells escaped)."""
    head = "#" * level
    if not t.rows:
        return f"{head} {t.title}\n\nnone\n"

    def cell(c: str) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")

    lines = [f"{head} {t.title}", "", "| " + " | ".join(t.header) + " |",
             "|" + "|".join("---:" if is_num(t.rows[0][i]) else "---" for i in range(len(t.header))) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in t.rows]
    if t.note:
        lines += ["", f"_{t.note}_"]
    return "\n".join(lines) + "\n"
