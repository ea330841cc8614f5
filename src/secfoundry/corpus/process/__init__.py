"""Stage 2 — process: per-document steps that turn collected documents into clean security text.

The pipeline engine (``corpus/pipeline.py``) calls these steps as plain Python callables over
batches of :class:`~secfoundry.core.documents.Document`; nothing here imports Ray.

API (every step)
----------------
Each step is a small class configured by a typed dataclass (``<Step>Config``, usable from YAML
via ``Config(**mapping)``) and exposes::

    step = Step(StepConfig(...))
    decision = step.apply(doc)           # -> Decision(doc | None, reason | None)
    kept, dropped = step.run_batch(docs)  # -> (list[Document], list[Dropped(doc, step, reason)])

* ``Decision.doc`` is the (possibly rewritten) document, or ``None`` when the step drops it;
  ``Decision.reason`` then says why (short, stable, machine-groupable: ``"lang:de"``,
  ``"relevance:0.12"``, ``"quality:repetition"``).
* Steps never raise on bad input: a document that cannot be processed is dropped with reason
  ``"error:<ExcType>: <message>"`` so one bad row never stops a batch.
* Steps add what they measured to ``doc.metadata`` under their own key (``content_type``,
  ``lang``, ``keywords``, ``relevance``, ``quality``, ``pii``) so later stages and the report
  can use it without recomputation.
* ``run_batch`` is the fast path (the relevance classifier vectorises a whole batch).

Steps, in pipeline order (``default_steps()`` builds them):

1. :class:`~.extract.ExtractStep` — HTML → Markdown (code blocks, inline code, tables, lists kept).
2. :class:`~.contenttype.ContentTypeStep` — route: prose / code / log / rule / record.
3. :class:`~.langid.LanguageStep` — language ID on the prose part only.
4. :class:`~.keywords.KeywordStep` — security keyword prefilter (high recall).
5. :class:`~.relevance.RelevanceStep` — trained classifier (hashed n-grams + linear head).
6. :class:`~.quality.QualityStep` — security-aware degenerate/boilerplate filters.
7. :class:`~.pii.PIIStep` — typed PII placeholders that keep IOCs.

Documents from high-value sources (``HIGH_VALUE_SOURCES``: connectors such as ``attack``,
``cve``, ``sigma``) are security by construction: the relevance steps pass them, and the
quality step only applies to them the checks that are safe for structured records.
"""

from __future__ import annotations

from secfoundry.corpus.process.base import (HIGH_VALUE_SOURCES, Decision, Dropped, ProcessStep, is_high_value,
                                            run_steps)

__all__ = ["HIGH_VALUE_SOURCES", "Decision", "Dropped", "ProcessStep", "is_high_value", "run_steps", "default_steps"]


def default_steps(config: dict | None = None) -> list[ProcessStep]:
    """The process steps in order, each configured from ``config[<step name>]`` (a mapping)."""
    from secfoundry.corpus.process.contenttype import ContentTypeConfig, ContentTypeStep
    from secfoundry.corpus.process.extract import ExtractConfig, ExtractStep
    from secfoundry.corpus.process.keywords import KeywordConfig, KeywordStep
    from secfoundry.corpus.process.langid import LanguageConfig, LanguageStep
    from secfoundry.corpus.process.pii import PIIConfig, PIIStep
    from secfoundry.corpus.process.quality import QualityConfig, QualityStep
    from secfoundry.corpus.process.relevance import RelevanceConfig, RelevanceStep

    config = config or {}
    specs = [
        ("extract", ExtractStep, ExtractConfig),
        ("contenttype", ContentTypeStep, ContentTypeConfig),
        ("langid", LanguageStep, LanguageConfig),
        ("keywords", KeywordStep, KeywordConfig),
        ("relevance", RelevanceStep, RelevanceConfig),
        ("quality", QualityStep, QualityConfig),
        ("pii", PIIStep, PIIConfig),
    ]
    steps: list[ProcessStep] = []
    for name, step_cls, cfg_cls in specs:
        raw = config.get(name, {})
        if raw is False:  # `langid: false` in a recipe disables a step
            continue
        steps.append(step_cls(cfg_cls(**(raw or {}))))
    return steps
