"""Stage 2 — process: per-document steps that turn collected documents into clean security text.

Every step here is a map step of the one step API (``secfoundry/corpus/step.py``) over batches
of :class:`~secfoundry.core.documents.Document`; nothing here imports Ray.

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

Steps, in the order the recipes use (the recipe is the only place that orders them;
``engine/recipe.py: PROCESS_STEPS`` is the default chain, as in ``configs/corpus/*.yaml``):

1. :class:`~.extract.ExtractStep` — HTML → Markdown (code blocks, inline code, tables, lists kept).
2. :class:`~.contenttype.ContentTypeStep` — route: prose / code / log / rule / record.
3. :class:`~.langid.LanguageStep` — language ID on the prose part only.
4. :class:`~.keywords.KeywordStep` — security keyword prefilter (high recall).
5. :class:`~.relevance.RelevanceStep` — trained classifier (hashed n-grams + linear head).
6. :class:`~.quality.QualityStep` — security-aware degenerate/boilerplate filters.
7. :class:`~.pii.PIIStep` — typed PII placeholders that keep IOCs.

Documents from high-value sources (``high_value.HIGH_VALUE_SOURCES``: connectors such as ``attack``,
``cve``, ``sigma``) are security by construction: the relevance steps pass them, and the
quality step only applies to them the checks that are safe for structured records.
"""
