"""The sentence-level technique model: nearest neighbours over ATT&CK procedure examples.

Training data: every ATT&CK procedure example in the KB (~17.7k sentences, each a ``uses``
relationship's text credited to its current technique), entity names masked ("the malware",
"the group") so the model keys on behaviour, not names; plus optional extra labelled sentences
(TRAM). Representation: word 1-2-gram TF-IDF by default (``TfidfEmbedder``, fitted in seconds),
or a dense embedder (the KB's all-MiniLM-L6-v2; ``hashing`` in tests) whose training vectors are
cached under ``SECFOUNDRY_HOME/intel`` keyed by the texts and the embedder, so only the first run
pays for embedding.

A query sentence gets a score per technique from its k nearest examples (similarity-weighted
votes, times the best similarity for that technique, so a sentence far from every example scores
low). Parents collect their sub-techniques' votes: a sentence split between T1071.001 and
T1071.004 is still confidently T1071.

Leakage control: ``exclude`` drops examples whose owner (the group/software/campaign they
describe) or whose text mentions one of the given entity ids — CTIBench-ATE items describe an
ATT&CK software entry, whose own examples must not be looked up while scoring it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from secfoundry.apps.intel.ttps_catalog import AttackCatalog
from secfoundry.apps.intel.ttps_lexicon import EntityMatcher

log = logging.getLogger(__name__)


@dataclass
class Example:
    text: str          # masked text the model sees
    technique: str
    owner: str = ""
    mentions: frozenset[str] = frozenset()


@dataclass
class KNNConfig:
    k: int = 12
    min_sim: float = 0.45   # neighbours below this similarity do not vote
    power: float = 4.0      # vote weight = sim ** power
    mode: str = "share"     # share: vote share x best similarity; max: best similarity x (0.5 + share / 2)
    scale: float | None = None  # optional per-sentence calibration 1 - 2 ** (-raw / scale) (tried: worse)
    cut: float = 0.35           # raw document score reported as confidence 0.5 (the default threshold)


def is_static(embedder: Any) -> bool:
    """True for bag-of-subword vectors (``minilm-static``, ``hashing``), False for the contextual
    sentence model: their cosines live on different scales, so they have their own settings."""
    name = getattr(embedder, "name", "") or ""
    return not name.startswith("all-MiniLM-L6-v2/")


def default_knn(representation: str, dense: Any = None) -> KNNConfig:
    """Settings per representation (similarities live on different scales), all chosen on
    pseudo-documents of ATT&CK software outside CTIBench-ATE (bench/intel_ttps_tune.py);
    ``dense``: the embedder of the dense / hybrid representation."""
    if representation == "tfidf":
        return KNNConfig(k=8, min_sim=0.25, power=2.0, mode="share", cut=0.1)  # dev micro-F1 0.686
    if representation == "hybrid":
        if dense is not None and not is_static(dense):
            # alpha 0.2 with the contextual MiniLM sentence model: dev micro-F1 0.756, but on prose
            # (TRAM, CTID summaries, CTIBench-ATE) below the static default: opt-in only
            return KNNConfig(k=8, min_sim=0.65, power=2.0, mode="share", cut=0.15)
        # alpha 0.5 with static MiniLM vectors (the default): dev micro-F1 0.715
        return KNNConfig(k=8, min_sim=0.4, power=2.0, mode="share", cut=0.15)
    if dense is not None and not is_static(dense):
        return KNNConfig(k=8, min_sim=0.6, power=4.0, mode="share", cut=0.25)  # contextual alone: dev 0.728
    return KNNConfig()


class HybridEmbedder:
    """Word TF-IDF and a dense embedder side by side: a sentence's similarity to an example is
    ``alpha * tfidf_cosine + (1 - alpha) * dense_cosine`` (TF-IDF keys on ATT&CK's formulaic
    wording, the dense model on paraphrases: "grabbed the saved browser passwords")."""

    hybrid = True

    def __init__(self, dense: Any, alpha: float = 0.5):
        self.tfidf = TfidfEmbedder()
        self.dense = dense
        self.alpha = alpha
        self.name = f"hybrid/{dense.name}"


@dataclass
class SentenceScores:
    scores: dict[str, float] = field(default_factory=dict)       # technique id -> 0..1
    neighbours: list[tuple[str, float, int]] = field(default_factory=list)  # (technique, sim, example index)


def embed_cached(embedder, texts: Sequence[str], kind: str = "ttps") -> np.ndarray:
    """Unit vectors for ``texts`` from the per-text store of ``vectors.VectorStore`` (keyed by a
    hash of each text and the embedder, length-sorted batches, written shard by shard so a killed
    run resumes; the CVE descriptions of map-cwe share the same store). ``kind`` is kept for
    callers; the store is one per embedder."""
    from secfoundry.apps.intel.vectors import VectorStore

    if not len(texts):
        return np.zeros((0, embedder.dim), np.float32)
    store = VectorStore(embedder)
    todo = len(texts) - sum(1 for t in set(texts) if store.has(t))
    if todo > 0:
        log.info("embedding %d %s sentences with %s (cached afterwards)", todo, kind, embedder.name)
    return store.get(texts, persist=True, log=log.info)


class TfidfEmbedder:
    """Word 1-2-gram TF-IDF (sublinear tf, English stop words, L2-normalised rows), fitted on the
    training examples. Sparse; fitting ~17.7k examples takes seconds, so it needs no cache. ATT&CK
    procedure language is formulaic ("can use HTTP for C2", "has dumped LSASS memory"), which
    word n-grams capture well; the dense MiniLM representation is the alternative (``dense``)."""

    sparse = True

    def __init__(self) -> None:
        self.name = "tfidf-word12"
        self.vec = None

    def fit(self, texts: Sequence[str]) -> "TfidfEmbedder":
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, stop_words="english",
                                   dtype=np.float32)
        self.vec.fit(texts)
        return self

    def encode(self, texts: Sequence[str]):
        if self.vec is None:
            raise RuntimeError("TfidfEmbedder.fit must run first")
        return self.vec.transform(list(texts))


class TechniqueModel:
    def __init__(self, catalog: AttackCatalog, embedder, *, extra: Iterable[tuple[str, str]] = (),
                 use_procedures: bool = True, config: KNNConfig | None = None):
        self.catalog = catalog
        self.embedder = embedder
        self.config = config or KNNConfig()
        self.entities = EntityMatcher(catalog)
        examples: list[Example] = []
        n_proc = 0
        if use_procedures:
            for p in catalog.procedures():
                ms = self.entities.find(p.text)
                examples.append(Example(self.entities.mask(p.text, ms), p.technique, p.owner,
                                        frozenset(m.id for m in ms)))
            n_proc = len(examples)
        for text, tid in extra:
            cur = catalog.current(tid)
            if cur:
                ms = self.entities.find(text)
                examples.append(Example(self.entities.mask(text, ms), cur, "", frozenset(m.id for m in ms)))
        if not examples:
            raise ValueError("no training examples: the KB has no ATT&CK procedure examples and none were given")
        self.examples = examples
        self.labels = sorted({e.technique for e in examples})
        self._label_idx = {t: i for i, t in enumerate(self.labels)}
        self.y = np.array([self._label_idx[e.technique] for e in examples], dtype=np.int32)
        self.owners = np.array([e.owner for e in examples], dtype=object)
        self.sparse = bool(getattr(embedder, "sparse", False))
        self.hybrid = bool(getattr(embedder, "hybrid", False))
        texts = [e.text for e in examples]
        self.Xd = None
        if self.sparse:
            self.X = embedder.fit(texts).encode(texts).tocsr()
        elif self.hybrid:
            self.X = embedder.tfidf.fit(texts).encode(texts).tocsr()
            self.Xd = self._dense_examples(embedder.dense, examples, n_proc)
        else:
            self.X = self._dense_examples(embedder, examples, n_proc)
        self._qcache: dict[str, Any] = {}

    @staticmethod
    def _dense_examples(embedder: Any, examples: list[Example], n_proc: int) -> np.ndarray:
        # the KB's examples and the extra ones are cached apart: adding TRAM re-embeds only TRAM
        parts = [embed_cached(embedder, [e.text for e in examples[:n_proc]])] if n_proc else []
        if len(examples) > n_proc:
            parts.append(embed_cached(embedder, [e.text for e in examples[n_proc:]], kind="ttps-extra"))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def similarities(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_examples) similarities in the model's representation."""
        if self.sparse:
            return (self.embedder.encode(texts) @ self.X.T).toarray()
        if self.hybrid:
            a = self.embedder.alpha
            lex = (self.embedder.tfidf.encode(texts) @ self.X.T).toarray()
            return a * lex + (1 - a) * (self.embed(texts) @ self.Xd.T)
        return self.embed(texts) @ self.X.T

    def embed(self, texts: Sequence[str]):
        """Query vectors, with a bounded in-memory cache (re-scoring a report is free)."""
        if self.sparse:
            return self.embedder.encode(texts)
        enc = self.embedder.dense if self.hybrid else self.embedder
        missing = [t for t in dict.fromkeys(texts) if t not in self._qcache]
        if missing:
            vecs = enc.encode(missing).astype(np.float32)
            if len(self._qcache) + len(missing) > 50_000:
                self._qcache.clear()
            self._qcache.update(zip(missing, vecs))
        return np.stack([self._qcache[t] for t in texts])

    def exclusion_mask(self, exclude: Iterable[str]) -> tuple[np.ndarray | None, int]:
        """Boolean mask of examples to drop (owner or mention in ``exclude``) and how many."""
        ex = set(exclude)
        if not ex:
            return None, 0
        mask = np.array([e.owner in ex or bool(e.mentions & ex) for e in self.examples], dtype=bool)
        return mask, int(mask.sum())

    def score(self, texts: Sequence[str], *, exclude: Iterable[str] = (), vectors: np.ndarray | None = None
              ) -> tuple[list[SentenceScores], int]:
        """Scores per (already masked) sentence, and how many examples were excluded."""
        if not texts:
            return [], 0
        if vectors is not None:
            sims = (vectors @ self.X.T).toarray() if self.sparse else vectors @ self.X.T
        else:
            sims = self.similarities(texts)
        mask, n_ex = self.exclusion_mask(exclude)
        if mask is not None:
            sims[:, mask] = -1.0
        cfg = self.config
        k = min(cfg.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out = []
        for i in range(len(texts)):
            idx = top[i][np.argsort(-sims[i, top[i]])]
            votes: dict[str, float] = {}
            best: dict[str, float] = {}
            total = 0.0
            neigh = []
            for j in idx:
                s = float(sims[i, j])
                tid = self.labels[self.y[j]]
                neigh.append((tid, s, int(j)))
                if s < cfg.min_sim:
                    continue
                w = s ** cfg.power
                total += w
                for t in {tid, tid.split(".")[0]}:
                    votes[t] = votes.get(t, 0.0) + w
                    best[t] = max(best.get(t, 0.0), s)
            scores = {}
            if total > 0:
                for t, v in votes.items():
                    share = v / total
                    raw = share * best[t] if cfg.mode == "share" else best[t] * (0.5 + 0.5 * share)
                    scores[t] = 1 - 2 ** (-raw / cfg.scale) if cfg.scale else raw
            out.append(SentenceScores(scores, neigh))
        return out, n_ex
