"""Relevance classifier: the second stage of the relevance filter (after the keyword prefilter).

A linear model over hashed word 1–2-grams and character 3–5-grams (sklearn's stateless
``HashingVectorizer``), trained by logistic regression. Chosen over MiniLM embeddings + a head
because it reaches the F1 target at >10x the throughput on 2 CPU cores (BENCHMARKS.md has both).

The model is saved without pickle: ``relevance.npz`` (float32 weights, bias) + ``relevance.json``
(hashing parameters, threshold, training data summary, metrics). The default model is trained
on first use into ``SECFOUNDRY_HOME/models/relevance/`` from
``datasets/relevance-seed.jsonl`` (train split) plus the hard negatives of
``relevance_data.py``; nothing trained is shipped (the seed mixes CC BY-SA and other licences).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from secfoundry.corpus.step import Decision, Dropped, Step
from secfoundry.corpus.process.high_value import is_high_value
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError

MODEL_FORMAT = "secfoundry-relevance-hashed-linear/1"
_FIELD_LINE = re.compile(r"^\s*[-*]\s+\*\*[^*\n]{1,40}\*\*:?[^\n]*", re.M)  # "- **Field**: value" near the top


@dataclass
class FeatureConfig:
    word_features: int = 2**18
    char_features: int = 2**18
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    word_max_chars: int = 6000  # documents are judged on their beginning
    char_max_chars: int = 1500  # char n-grams are the expensive part; a shorter window suffices


class Featurizer:
    def __init__(self, cfg: FeatureConfig):
        from sklearn.feature_extraction.text import HashingVectorizer

        self.cfg = cfg
        self.word = HashingVectorizer(n_features=cfg.word_features, ngram_range=tuple(cfg.word_ngrams),
                                      alternate_sign=False, norm="l2", lowercase=True,
                                      token_pattern=r"(?u)\b\w[\w\-.]*\w\b|\b\w\b")
        self.char = HashingVectorizer(n_features=cfg.char_features, analyzer="char_wb",
                                      ngram_range=tuple(cfg.char_ngrams), alternate_sign=False,
                                      norm="l2", lowercase=True) if cfg.char_features else None

    @property
    def dim(self) -> int:
        return self.cfg.word_features + (self.cfg.char_features if self.char is not None else 0)

    def transform(self, texts: Sequence[str]):
        from scipy.sparse import hstack

        xw = self.word.transform([t[: self.cfg.word_max_chars] for t in texts])
        if self.char is None:
            return xw.tocsr()
        xc = self.char.transform([t[: self.cfg.char_max_chars] for t in texts])
        return hstack([xw, xc], format="csr")


@dataclass
class RelevanceModel:
    features: FeatureConfig
    weights: np.ndarray  # (dim,) float32
    bias: float
    threshold: float = 0.5
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self._fz = Featurizer(self.features)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros(0, dtype=np.float32)
        x = self._fz.transform(texts)
        z = x @ self.weights + self.bias
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba(texts) >= self.threshold

    # -- persistence (no pickle) -----------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        import os

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        # temp files + rename, json last: concurrent workers training on first use never read a
        # half-written model (training is deterministic, so whichever rename wins is the same)
        tag = f".tmp-{os.getpid()}"
        with open(d / f"relevance.npz{tag}", "wb") as f:
            np.savez_compressed(f, weights=self.weights.astype(np.float32),
                                bias=np.array([self.bias], dtype=np.float32))
        meta = {"format": MODEL_FORMAT, "features": asdict(self.features), "threshold": self.threshold,
                "info": self.info}
        (d / f"relevance.json{tag}").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        os.replace(d / f"relevance.npz{tag}", d / "relevance.npz")
        os.replace(d / f"relevance.json{tag}", d / "relevance.json")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "RelevanceModel":
        d = Path(directory)
        cfg_path = d / "relevance.json"
        try:
            meta = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"cannot read relevance model config: {e}", file=str(cfg_path)) from e
        if meta.get("format") != MODEL_FORMAT:
            raise InputError(f"unknown model format {meta.get('format')!r}", file=str(cfg_path), field="format")
        feats = FeatureConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["features"].items()})
        with np.load(d / "relevance.npz", allow_pickle=False) as z:
            weights, bias = z["weights"].astype(np.float32), float(z["bias"][0])
        model = cls(feats, weights, bias, float(meta.get("threshold", 0.5)), meta.get("info", {}))
        if weights.shape[0] != model._fz.dim:
            raise InputError(f"weights have {weights.shape[0]} dims, features say {model._fz.dim}",
                             file=str(d / "relevance.npz"), field="weights")
        return model


# --- training -----------------------------------------------------------------------------

@dataclass
class TrainConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    C: float = 8.0  # inverse L2 strength of the logistic regression
    threshold: float = 0.5
    class_weight: str | None = "balanced"
    max_iter: int = 200


def train(texts: Sequence[str], labels: Sequence[int], cfg: TrainConfig | None = None,
          info: dict | None = None) -> RelevanceModel:
    from sklearn.linear_model import LogisticRegression

    cfg = cfg or TrainConfig()
    fz = Featurizer(cfg.features)
    t0 = time.time()
    x = fz.transform(list(texts))
    y = np.asarray(labels, dtype=np.int64)
    clf = LogisticRegression(C=cfg.C, class_weight=cfg.class_weight, max_iter=cfg.max_iter,
                             solver="liblinear")
    clf.fit(x, y)
    meta = dict(info or {})
    meta.update(n_train=int(len(y)), n_pos=int(y.sum()), train_seconds=round(time.time() - t0, 2),
                C=cfg.C, trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return RelevanceModel(cfg.features, clf.coef_[0].astype(np.float32), float(clf.intercept_[0]),
                          cfg.threshold, meta)


@dataclass
class Metrics:
    n: int
    precision: float
    recall: float
    f1: float
    accuracy: float
    fpr: float  # share of negatives predicted relevant

    def row(self) -> str:
        return (f"n={self.n} P={self.precision:.4f} R={self.recall:.4f} F1={self.f1:.4f} "
                f"acc={self.accuracy:.4f} FPR={self.fpr:.4f}")


def metrics(y_true: Iterable[int], y_pred: Iterable[bool | int]) -> Metrics:
    yt = np.asarray(list(y_true), dtype=bool)
    yp = np.asarray(list(y_pred), dtype=bool)
    tp = int((yt & yp).sum())
    fp = int((~yt & yp).sum())
    fn = int((yt & ~yp).sum())
    tn = int((~yt & ~yp).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return Metrics(len(yt), round(p, 4), round(r, 4), round(f1, 4), round((tp + tn) / max(len(yt), 1), 4),
                   round(fp / (fp + tn), 4) if fp + tn else 0.0)


# --- default model -------------------------------------------------------------------------

def default_model_dir() -> Path:
    from secfoundry.core.paths import cache_dir

    return cache_dir("models", "relevance")


def load_or_train_default(model_dir: str | Path | None = None, seed: str | Path | None = None) -> RelevanceModel:
    """The model in ``model_dir`` (default SECFOUNDRY_HOME/models/relevance), trained on first use."""
    d = Path(model_dir) if model_dir else default_model_dir()
    if (d / "relevance.json").is_file():
        return RelevanceModel.load(d)
    from secfoundry.corpus.process.relevance_data import training_set

    texts, labels, summary = training_set(seed)
    model = train(texts, labels, info={"data": summary})
    model.save(d)
    return model


@dataclass
class RelevanceConfig:
    model_dir: str | None = None  # default: SECFOUNDRY_HOME/models/relevance (trained on first use)
    seed: str | None = None  # relevance-seed.jsonl for first-use training (default: shared data)
    threshold: float | None = None  # override the model's threshold
    trust_high_value: bool = True  # documents of high-value connectors are not classified
    extra_high_value: list[str] = field(default_factory=list)
    # The model is trained on paragraphs where code means "Python docs": a document with fenced
    # code is also scored on its prose alone, and the higher score counts.
    prose_view: bool = True
    prose_view_min_chars: int = 200
    # Strong keyword evidence keeps a document whatever the model says (1 of 3,659 held-out
    # negatives reaches it; measured in BENCHMARKS.md). None disables the override.
    keyword_override_density: float | None = 5.0
    keyword_override_distinct: int = 5
    # A document that names a security identifier of the keyword list's strongest class (weight
    # >= 3: CVE, CWE, CAPEC, GHSA, PYSEC, RUSTSEC, CCE ids, CVSS vectors, defanged URLs) is
    # security text whatever the model says. The model was trained on paragraphs where system
    # configuration prose is a hard negative (man pages), so hardening rules ("The kernel
    # parameter ... should be set to 0", ComplianceAsCode with CCE ids) scored 0.27-0.42.
    # Weaker ids (weight 2: ATT&CK technique/tactic, D3FEND, MS bulletin ids) count when a record
    # *field* near the top declares them ("- **ATT&CK technique**: T1546.018"): Atomic test pages
    # whose prose is about Python startup hooks scored 0.01-0.17.
    id_override: bool = True
    id_override_weight: float = 3.0
    id_field_weight: float = 2.0


class RelevanceStep(Step):
    """Drops documents the classifier scores below the threshold; annotates ``metadata['relevance']``."""

    name = "relevance"

    def __init__(self, config: RelevanceConfig | None = None, model: RelevanceModel | None = None):
        self.config = config or RelevanceConfig()
        self._model = model

    def setup(self) -> None:
        """Load (or train on first use) the model once per worker."""
        _ = self.model

    @property
    def model(self) -> RelevanceModel:
        if self._model is None:
            self._model = load_or_train_default(self.config.model_dir, self.config.seed)
        return self._model

    @property
    def threshold(self) -> float:
        return self.config.threshold if self.config.threshold is not None else self.model.threshold

    def _trusted(self, doc: Document) -> bool:
        return self.config.trust_high_value and is_high_value(doc.source, self.config.extra_high_value)

    def apply(self, doc: Document) -> Decision:
        kept, dropped = self.run_batch([doc])
        return Decision(kept[0]) if kept else Decision(None, dropped[0].reason)

    def _views(self, doc: Document) -> list[str]:
        views = [doc.text]
        if self.config.prose_view and "```" in doc.text:
            from secfoundry.corpus.process.contenttype import FENCE_RE

            prose = FENCE_RE.sub("\n", doc.text)
            if len(prose.strip()) >= self.config.prose_view_min_chars:
                views.append(prose)
        return views

    def _keyword_override(self, doc: Document) -> bool:
        c = self.config
        if c.keyword_override_density is None:
            return False
        kw = doc.metadata.get("keywords")
        if not isinstance(kw, dict) or "density" not in kw:
            from secfoundry.corpus.process.keywords import score_text

            s = score_text(doc.text)
            kw = {"density": s.density, "distinct": s.distinct}
        return kw["density"] >= c.keyword_override_density and kw.get("distinct", 0) >= c.keyword_override_distinct

    def _id_override(self, doc: Document) -> bool:
        if not self.config.id_override:
            return False
        from secfoundry.corpus.process.keywords import default_keywords

        text = doc.text[:200_000]
        pats = default_keywords().patterns
        if any(w >= self.config.id_override_weight and pat.findall(text) for pat, w, _ in pats):
            return True
        fields = "\n".join(_FIELD_LINE.findall(text[:1500]))
        return bool(fields) and any(w >= self.config.id_field_weight and pat.findall(fields) for pat, w, _ in pats)

    def _score(self, docs: list[Document], idx: list[int]) -> dict[int, float]:
        texts: list[str] = []
        owner: list[int] = []
        for i in idx:
            for v in self._views(docs[i]):
                texts.append(v)
                owner.append(i)
        p = self.model.predict_proba(texts)
        out: dict[int, float] = {}
        for i, v in zip(owner, p):
            out[i] = max(out.get(i, 0.0), float(v))
        return out

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        todo = [i for i, d in enumerate(docs) if not self._trusted(d)]
        probs: dict[int, float] = {}
        if todo:
            try:
                probs = self._score(docs, todo)
            except Exception:  # a batch-level failure: fall back to one document at a time
                for i in todo:
                    try:
                        probs.update(self._score(docs, [i]))
                    except Exception as e:
                        probs[i] = float("nan")
                        docs[i].metadata["relevance_error"] = f"{type(e).__name__}: {e}"[:200]
        kept: list[Document] = []
        dropped: list[Dropped] = []
        thr = self.threshold
        for i, doc in enumerate(docs):
            if i not in probs:
                doc.metadata["relevance"] = None  # trusted source, not classified
                kept.append(doc)
                continue
            p = probs[i]
            if p != p:  # NaN: error
                dropped.append(Dropped(doc, self.name, f"error:{doc.metadata.get('relevance_error', '')}"))
                continue
            doc.metadata["relevance"] = round(p, 4)
            if p >= thr:
                kept.append(doc)
            elif self._keyword_override(doc):
                doc.metadata["relevance_by"] = "keywords"
                kept.append(doc)
            elif self._id_override(doc):
                doc.metadata["relevance_by"] = "identifier"
                kept.append(doc)
            else:
                dropped.append(Dropped(doc, self.name, f"relevance:{p:.2f}"))
        return kept, dropped
