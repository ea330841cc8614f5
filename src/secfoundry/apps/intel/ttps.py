"""extract-ttps: threat report -> ATT&CK techniques with evidence spans, groups and software.

    from secfoundry.apps.intel.ttps import extract_ttps
    result = extract_ttps("report.pdf")            # TTPResult (pydantic), see schemas_ttps
    result.techniques[0].id, result.techniques[0].spans[0].text

Evidence per sentence, combined:
1. explicit ids (``T1059.001``), validated against the KB, revoked ones mapped to their replacement;
2. technique names/aliases (lexical, weighted by how specific the name is);
3. the sentence model (nearest ATT&CK procedure examples + TRAM, ``ttps_model``);
4. optionally an LLM that confirms or rejects the candidates found by 1-3 (never adds ids).
Sentences written as instructions to a model are dropped first (``ttps_guard``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from secfoundry.apps.intel import ttps_guard
from secfoundry.apps.intel.reports import ReportText, Sentence, load_report, sentences
from secfoundry.apps.intel.schemas_ttps import EntityHit, IgnoredSpan, Span, TechniqueHit, TTPResult
from secfoundry.apps.intel.ttps_catalog import TECH_RE, AttackCatalog, catalog_for
from secfoundry.apps.intel.ttps_lexicon import TechniqueNameMatcher
from secfoundry.apps.intel.ttps_model import (HybridEmbedder, KNNConfig, TechniqueModel, TfidfEmbedder, default_knn,
                                              is_static)

if TYPE_CHECKING:  # pragma: no cover
    from secfoundry.kb.knowledge import KnowledgeBase

EXPLICIT_CONF = 0.92
LEX_CUT = 0.35  # the cut EXPLICIT_CONF and the name strengths (ttps_lexicon) are expressed against
MIN_WORDS = 4
# representation "hybrid": weight of the TF-IDF similarity (the rest: MiniLM), chosen on the dev set
# of bench/intel_ttps_tune.py per dense side: 0.5 with static MiniLM vectors (the default), 0.2 with
# the contextual sentence model (SECFOUNDRY_TTPS_EMBEDDER=minilm: best on that dev set, but worse on
# TRAM, the CTID summaries and CTIBench-ATE - see docs/intel.md)
HYBRID_ALPHA = 0.5
HYBRID_ALPHA_CONTEXTUAL = 0.2
# Clause boundaries inside a sentence that lists several behaviours ("it downloads files, and
# can take screenshots; ..."): each clause is also scored, a technique keeps its best score.
_CLAUSE = re.compile(r";\s+|,\s+(?:and|while|as well as|which|then|also|before|after)\s+|"
                     r"\s+and\s+(?=(?:can|could|also|then|uses?|used|has|had|is|was|will|may|leverages?|employs?)\b)|"
                     r"\.\s+")


# "X is a backdoor developed by ..." describes what something is, not what it did: the model's
# resource-development / reconnaissance guesses from such a sentence are not evidence.
_DEFINITION = re.compile(r"^.{0,120}?\b(?:is|was|are|were)\s+(?:an?|the|one)\s+(?:[\w\-+#./]+\s+){0,6}?"
                         r"(?:malware|tool|backdoor|trojan|rat|ransomware|implant|loader|downloader|dropper|"
                         r"stealer|framework|variant|botnet|worm|rootkit|spyware|app|application|utility|family|"
                         r"wiper|keylogger|toolkit|payload|remote access|group|actor|threat)\b", re.I)
_PRE_ATTACK = {"resource-development", "reconnaissance"}


def clauses(text: str) -> list[str]:
    parts = [p.strip(" ,.;") for p in _CLAUSE.split(text)]
    parts = [p for p in parts if len(re.findall(r"[A-Za-z]{2,}", p)) >= MIN_WORDS]
    return parts if len(parts) > 1 else []


@dataclass
class ExtractOptions:
    min_confidence: float = 0.5          # on the reported scale (see TTPExtractor.confidence)
    domain: str | None = None            # enterprise | mobile | ics
    exclude_entities: tuple[str, ...] = ()  # withhold these entities' procedure examples (leakage control)
    exclude_mentioned_software: bool = False  # ... and those of every software the text names (CTIBench-ATE)
    max_spans: int = 5
    clauses: bool = True                 # also score the clauses of multi-behaviour sentences
    llm: str | None = None
    llm_weight: float = 0.4


def _is_path(value: str) -> bool:
    """A short one-line string naming an existing file (else it is report text)."""
    if len(value) > 1024 or "\n" in value:
        return False
    try:
        return Path(value).is_file()
    except (OSError, ValueError):
        return False


@dataclass
class _Cand:
    score: float = 0.0
    kinds: set[str] = field(default_factory=set)
    replaced: str | None = None


def _ttps_embedder() -> Any:
    """The hybrid representation's dense side: ``SECFOUNDRY_TTPS_EMBEDDER`` (``vectors.intel_embedder``
    specs; default ``minilm-static``), or None when the model package is missing."""
    import logging
    import os

    from secfoundry.apps.intel.vectors import intel_embedder

    try:
        return intel_embedder(os.environ.get("SECFOUNDRY_TTPS_EMBEDDER", "minilm-static"))
    except (RuntimeError, ImportError, OSError) as e:
        logging.getLogger(__name__).warning("extract-ttps: no dense embedder (%s); TF-IDF only", e)
        return None


class TTPExtractor:
    """Holds the catalog, name matchers and the sentence model (load once, reuse)."""

    def __init__(self, kb: "KnowledgeBase | None" = None, *, embedder: Any = None,
                 extra: Iterable[tuple[str, str]] = (), use_procedures: bool = True, knn: KNNConfig | None = None,
                 representation: str | None = None):
        """``representation``: ``hybrid`` (default; ``SECFOUNDRY_TTPS_REPR`` overrides: ``HYBRID_ALPHA``
        x TF-IDF + the rest x static-MiniLM similarity, chosen on the dev set of
        bench/intel_ttps_tune.py), ``tfidf``, or ``dense`` (the KB's embedder, MiniLM; ``embedder``
        given means dense with that embedder)."""
        import os

        from secfoundry.kb.knowledge import KnowledgeBase

        self.kb = kb or KnowledgeBase.open()
        self.catalog: AttackCatalog = catalog_for(self.kb)
        self.names = TechniqueNameMatcher(self.catalog)
        rep = representation or ("dense" if embedder is not None else os.environ.get("SECFOUNDRY_TTPS_REPR", "hybrid"))
        if rep not in ("tfidf", "dense", "hybrid"):
            raise ValueError(f"representation must be tfidf, dense or hybrid, not {rep!r}")
        if rep == "tfidf" or getattr(embedder, "sparse", False):  # fitted per model: never share one
            rep, emb = "tfidf", TfidfEmbedder()
        elif rep == "hybrid":
            if embedder is None:  # SECFOUNDRY_TTPS_EMBEDDER (vectors.intel_embedder specs), default static MiniLM
                embedder = _ttps_embedder()
            alpha = float(os.environ.get("SECFOUNDRY_TTPS_ALPHA", HYBRID_ALPHA if is_static(embedder) else HYBRID_ALPHA_CONTEXTUAL))
            emb = HybridEmbedder(embedder, alpha) if embedder is not None else None
            if emb is None:  # no model package: TF-IDF alone, as before
                rep, emb = "tfidf", TfidfEmbedder()
        else:
            emb: Any = embedder if embedder is not None else self.kb.embedder
        self.representation = rep
        dense = emb.dense if rep == "hybrid" else (emb if rep == "dense" else None)
        self.model = TechniqueModel(self.catalog, emb, extra=extra, use_procedures=use_procedures,
                                    config=knn or default_knn(rep, dense))
        self.entities = self.model.entities

    # -- per sentence -------------------------------------------------------------------------------
    def _sentence_candidates(self, s: Sentence, unknown: set[str]) -> tuple[dict[str, _Cand], str]:
        cands: dict[str, _Cand] = {}
        for m in TECH_RE.finditer(s.text):
            raw = m.group(0)
            cur = self.catalog.current(raw)
            if cur is None:
                unknown.add(raw)
                continue
            c = cands.setdefault(cur, _Cand())
            c.score = max(c.score, EXPLICIT_CONF * self._lex_scale)
            c.kinds.add("explicit-id")
            if cur != raw:
                c.replaced = raw
        for m, strength in self.names.find(s.text):
            c = cands.setdefault(m.id, _Cand())
            c.score = max(c.score, strength * self._lex_scale)
            c.kinds.add("name")
        model_text = TECH_RE.sub(" ", self.entities.mask(s.text))
        return cands, model_text

    def extract(self, report: ReportText | str | Path, options: ExtractOptions | None = None) -> TTPResult:
        opts = options or ExtractOptions()
        if not isinstance(report, ReportText):
            report = load_report(report) if isinstance(report, Path) or _is_path(report) else load_report(text=report)
        text = report.text
        sents = sentences(text)
        result = TTPResult(attack_version=self.catalog.version, source=report.source, format=report.format,
                           text_chars=len(text), sentences=len(sents), warnings=list(report.warnings))
        kept: list[Sentence] = []
        for s in sents:
            if ttps_guard.is_instruction(s.text):
                result.ignored.append(IgnoredSpan(start=s.start, end=s.end, text=s.text,
                                                  reason="reads as an instruction to a model, not threat behaviour"))
            else:
                kept.append(s)
        # entities
        ent_spans: dict[str, list[Span]] = {}
        for s in kept:
            for m in self.entities.find(s.text):
                ent_spans.setdefault(m.id, []).append(Span(start=s.start + m.start, end=s.start + m.end, text=s.text))
        exclude = set(opts.exclude_entities)
        if opts.exclude_mentioned_software:
            exclude |= {e for e in ent_spans if self.catalog.entities[e].type == "software"}
        # candidates per sentence
        unknown: set[str] = set()
        per_sent: list[dict[str, _Cand]] = []
        model_in: list[tuple[int, str]] = []
        for i, s in enumerate(kept):
            cands, mt = self._sentence_candidates(s, unknown)
            per_sent.append(cands)
            if len(re.findall(r"[A-Za-z]{2,}", mt)) >= MIN_WORDS:
                model_in.append((i, mt))
                if opts.clauses:
                    model_in.extend((i, c) for c in clauses(mt))
        scored, n_ex = self.model.score([t for _, t in model_in], exclude=exclude)
        result.excluded_examples = n_ex
        best: list[dict[str, float]] = [{} for _ in kept]
        for (i, _), sc in zip(model_in, scored):
            for tid, v in sc.scores.items():
                best[i][tid] = max(best[i].get(tid, 0.0), v)
        for i, scores in enumerate(best):
            definition = bool(_DEFINITION.match(kept[i].text))
            for tid, v in scores.items():
                t = self.catalog.techniques.get(tid)
                if definition and t and set(t.tactics) <= _PRE_ATTACK and not per_sent[i].get(tid):
                    continue
                c = per_sent[i].setdefault(tid, _Cand())
                if c.kinds:  # lexical/explicit evidence and the model agree: both count
                    c.score = 1 - (1 - c.score) * (1 - v)
                else:
                    c.score = v
                c.kinds.add("model")
        raw_opts = dataclasses.replace(opts, min_confidence=self.raw_score(opts.min_confidence))
        agg = {t: (self.confidence(v[0]), *v[1:]) for t, v in self._aggregate(kept, per_sent, raw_opts).items()}
        if opts.llm:
            agg, result.llm = self._llm_confirm(agg, opts)
        for tid, (conf, spans, kinds, replaced) in sorted(agg.items(), key=lambda kv: (-kv[1][0], kv[0])):
            if conf < opts.min_confidence:
                continue
            t = self.catalog.techniques[tid]
            result.techniques.append(TechniqueHit(id=tid, name=t.full_name, confidence=round(conf, 4),
                                                  tactics=list(t.tactics), evidence=sorted(kinds),
                                                  spans=spans[:opts.max_spans], replaced=replaced))
        for eid, spans in sorted(ent_spans.items()):
            e = self.catalog.entities[eid]
            hit = EntityHit(id=eid, name=e.name, type=e.type, spans=spans[:opts.max_spans])
            {"group": result.groups, "software": result.software}.get(e.type, result.campaigns).append(hit)
        result.unknown_ids = sorted(unknown)
        return result

    @property
    def cut(self) -> float:
        return self.model.config.cut

    @property
    def _lex_scale(self) -> float:
        """Lexical/explicit strengths are written for a 0.35 cut; keep them relative to the model's."""
        return self.cut / LEX_CUT

    def confidence(self, raw: float) -> float:
        """Reported confidence: monotone in the raw document score, 0.5 at the model's cut (the
        default threshold, chosen on the development set), 0.75 at twice the cut."""
        return 1.0 - 0.5 ** (max(raw, 0.0) / self.cut)

    def raw_score(self, confidence: float) -> float:
        if confidence >= 1.0:
            return float("inf")
        return self.cut * math.log(1.0 - max(confidence, 0.0)) / math.log(0.5)

    def _aggregate(self, kept: list[Sentence], per_sent: list[dict[str, _Cand]], opts: ExtractOptions
                   ) -> dict[str, tuple[float, list[Span], set[str], str | None]]:
        """Per technique: document confidence (best sentence, raised by further supporting
        sentences), spans best-first. A sub-technique found in a sentence stands for its parent
        there; a parent is reported only when no child of it is."""
        thr = opts.min_confidence
        found: dict[str, list[tuple[float, Sentence, set[str], str | None]]] = {}
        for s, cands in zip(kept, per_sent):
            for tid, c in cands.items():
                if not self.catalog.in_domain(tid, opts.domain) or tid not in self.catalog.techniques:
                    continue
                if "." not in tid and any(k.startswith(tid + ".") and v.score >= thr and v.score >= c.score * 0.8
                                          for k, v in cands.items()):
                    continue  # a confident child carries this evidence
                if "." in tid and c.kinds == {"model"} and c.score < thr:
                    continue
                found.setdefault(tid, []).append((c.score, s, c.kinds, c.replaced))
        out = {}
        for tid, items in found.items():
            items.sort(key=lambda x: (-x[0], x[1].start))
            conf = items[0][0]
            rest = 1.0
            for sc, *_ in items[1:4]:
                rest *= 1 - 0.35 * sc
            conf = 1 - (1 - conf) * rest
            spans = [Span(start=s.start, end=s.end, text=s.text, score=round(sc, 4))
                     for sc, s, _, _ in items if sc >= thr * 0.5]
            kinds = set().union(*(k for _, _, k, _ in items))
            replaced = next((r for *_, r in items if r), None)
            out[tid] = (min(conf, 0.99), spans, kinds, replaced)
        # parents whose evidence is all in reported children are dropped
        reported = {t for t, v in out.items() if v[0] >= thr}
        for tid in list(out):
            if "." not in tid and any(r.startswith(tid + ".") for r in reported) and "explicit-id" not in out[tid][2]:
                child_best = max(out[r][0] for r in reported if r.startswith(tid + "."))
                if out[tid][0] <= child_best + 0.15:
                    del out[tid]
        return out

    def _llm_confirm(self, agg: dict, opts: ExtractOptions) -> tuple[dict, dict]:
        from secfoundry.apps.intel.ttps_llm import confirm

        return confirm(self.catalog, agg, opts)


_EXTRACTORS: dict[tuple[str, str], TTPExtractor] = {}


def get_extractor(kb: "KnowledgeBase | None" = None) -> TTPExtractor:
    """A warm extractor per KB (the service and the eval backend call this per request)."""
    from secfoundry.kb.knowledge import KnowledgeBase

    kb = kb or KnowledgeBase.open()
    key = (str(kb.paths.db), "default")
    ex = _EXTRACTORS.get(key)
    if ex is None:
        ex = _EXTRACTORS[key] = TTPExtractor(kb)
    return ex


def extract_ttps(report: ReportText | str | Path, *, kb: "KnowledgeBase | None" = None,
                 options: ExtractOptions | None = None, **kw: Any) -> TTPResult:
    """Extract techniques from a report (path, text or ``ReportText``); ``kw`` sets ExtractOptions."""
    opts = options or ExtractOptions(**kw)
    return get_extractor(kb).extract(report, opts)
