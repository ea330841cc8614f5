"""The extract step: HTML documents rewritten as Markdown by ``core.html.html_to_markdown``."""

from __future__ import annotations

from dataclasses import dataclass, field

from secfoundry.core.documents import Document
from secfoundry.core.html import html_to_markdown, looks_like_html
from secfoundry.corpus.process.high_value import is_high_value
from secfoundry.corpus.step import Decision, Step


@dataclass
class ExtractConfig:
    min_chars: int = 1  # documents whose Markdown is shorter are dropped ("extract:empty")
    keep_links: bool = False  # render <a> as [text](href) instead of text only
    main_content: bool = True  # detect the main content; False renders the whole <body>
    html_sources: list[str] = field(default_factory=list)  # sources whose text is always HTML



class ExtractStep(Step):
    """Rewrites HTML documents as Markdown; other documents pass unchanged."""

    name = "extract"

    def __init__(self, config: ExtractConfig | None = None):
        self.config = config or ExtractConfig()

    def is_html(self, doc: Document) -> bool:
        ctype = str(doc.metadata.get("content_type_http") or doc.metadata.get("mime") or "").lower()
        if "html" in ctype:
            return True
        if doc.source.split(":", 1)[0] in self.config.html_sources:
            return True
        if doc.metadata.get("format") == "html":
            return True
        if is_high_value(doc.source):
            return False  # connectors render Markdown (which may quote HTML)
        return looks_like_html(doc.text)

    def apply(self, doc: Document) -> Decision:
        if not self.is_html(doc):
            return Decision(doc)
        ex = html_to_markdown(doc.text, main_content=self.config.main_content,
                              keep_links=self.config.keep_links)
        if len(ex.markdown.strip()) < self.config.min_chars:
            return Decision(None, "extract:empty")
        meta = dict(doc.metadata)
        meta["extracted_from"] = "html"
        if ex.lang:
            meta["html_lang"] = ex.lang
        return Decision(Document(id=doc.id, text=ex.markdown, source=doc.source, url=doc.url,
                                 license=doc.license, title=doc.title or ex.title,
                                 version=doc.version, metadata=meta))
