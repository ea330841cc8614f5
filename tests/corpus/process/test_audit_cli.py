"""audit-filters on connector documents and seed paragraphs; CLI commands; the step chain."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from secfoundry.cli import app
from secfoundry.corpus.engine.recipe import process_steps as default_steps
from secfoundry.corpus.step import run_steps
from secfoundry.corpus.process.audit import Auditor, render_html, render_markdown, source_documents
from secfoundry.core.documents import Document

PAGES = Path(__file__).parent / "data" / "html"


def test_high_value_documents_survive_end_to_end(mirror, small_model):
    """Connector documents (CVE, KEV, OSV advisories, OWASP) through the whole chain: <= 1% dropped."""
    _, model_dir = small_model
    errors: list[str] = []
    docs = list(source_documents(mirror, ["cve", "kev", "osv"], limit=40, errors=errors))
    docs += list(source_documents(mirror, ["owasp"], limit=8, errors=errors))  # long pages: a few
    assert not errors and len(docs) >= 120
    res = Auditor({"relevance": {"model_dir": str(model_dir)}}).audit(docs)
    dropped, total = res.high_value_rate()
    assert total == len(docs) and dropped / total <= 0.01
    md = render_markdown(res)
    assert "| cve (high-value) |" in md and "end-to-end" in md
    assert "<table>" in render_html(res)


def test_chain_on_mixed_batch(small_model):
    _, model_dir = small_model
    steps = default_steps({"relevance": {"model_dir": str(model_dir)}})
    assert [s.name for s in steps] == ["extract", "contenttype", "langid", "keywords", "relevance", "quality", "pii"]
    docs = [
        Document(id="html", source="crawl", text=(PAGES / "blog_python_powershell.html").read_text(),
                 metadata={"mime": "text/html"}),
        Document(id="cake", source="crawl", text="Mix flour, sugar and eggs. Bake the cake for forty minutes. " * 10),
        Document(id="cve", source="cve", text="# CVE-2024-0001\n\nReported by jane.roe@gmail.com."),
        Document(id="bad", source="crawl", text=None),  # type: ignore[arg-type]  # bad row: dropped, not raised
    ]
    kept, dropped = run_steps(steps, docs)
    assert {d.id for d in kept} == {"html", "cve"}
    reasons = {d.doc.id: (d.step, d.reason) for d in dropped}
    assert reasons["cake"][0] == "keywords" and reasons["bad"][1].startswith("error:")
    cve = next(d for d in kept if d.id == "cve")
    assert "<EMAIL>" in cve.text and cve.metadata["content_type"] == "record"
    html = next(d for d in kept if d.id == "html")
    assert "```python" in html.text
    assert html.metadata["relevance"] >= 0.5 or html.metadata["relevance_by"] == "keywords"


def test_cli(tmp_path, small_model):
    _, model_dir = small_model
    r = CliRunner()
    out = r.invoke(app, ["corpus", "extract", str(PAGES / "ioc_table.html")])
    assert out.exit_code == 0 and "| SHA256 |" in out.stdout
    out = r.invoke(app, ["corpus", "pii", "-"], input="call +44 20 7946 0958 about 10.1.2.3\n")
    assert out.exit_code == 0 and "call <PHONE> about 10.1.2.3" in out.stdout
    sigma = tmp_path / "r.yml"
    sigma.write_text("title: t\nlogsource:\n  product: windows\ndetection:\n  s:\n    a: b\n  condition: s\n")
    out = r.invoke(app, ["corpus", "route", str(sigma)])
    assert out.exit_code == 0 and json.loads(out.stdout)["content_type"] == "rule"
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps(Document(id=f"d{i}", text=t, source=s).to_row()) for i, (t, s) in enumerate([
        ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 5, "crawl"),
        ("# CVE-2024-1\n\nShort.", "cve")])))
    report = tmp_path / "audit.md"
    out = r.invoke(app, ["corpus", "audit-filters", "--input", str(docs), "--no-relevance", "--out", str(report)])
    assert out.exit_code == 0, out.output
    text = report.read_text()
    assert "| crawl | 1 |" in text and "0/1 dropped" in text
    out = r.invoke(app, ["corpus", "relevance", "eval", "--model", str(model_dir), "--no-derived"])
    assert out.exit_code == 0 and "hard-negatives" in out.stdout
