"""Dense features for map-cwe: sentence vectors of CVE descriptions next to the TF-IDF SVM.

From the vectors (``vectors.intel_embedder``: all-MiniLM-L6-v2 by default) of the labelled rows
of a fitted ``IntelModel`` (the same CNA/ADP labels as the SVM), two signals:

* ``dense_lr``: a multinomial logistic regression on the unit vectors;
* ``dense_knn``: similarity-weighted votes of the ``k`` nearest labelled CVEs (a record's first
  label counts fully, further labels half). The leakage rule applies: rows excluded for an item
  (its CVE id, its normalized description) never vote.

``CweMapper`` mixes them with the SVM's distribution: ``w_svm * svm + w_lr * lr + w_knn * knn``
(weights sum to 1, so the keyword bonus and the NVD roll-up keep their scale). The weights and
``k`` were chosen on the development half of the temporal split (``bench/intel_cwe_dense.py``),
never on CTIBench; they are written into the part's ``config.json`` and can be overridden.

Stored next to the model in ``<model dir>/dense-<embedder>/`` (npy + JSON, no pickle); built by
``secfoundry intel fit`` (the vectors of ~23k descriptions are cached per text under
``SECFOUNDRY_HOME/intel/embeddings``, so a second fit - e.g. the temporal one - reuses them).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from secfoundry.apps.intel.cve_guard import clean_description
from secfoundry.apps.intel.vectors import VectorStore
from secfoundry.core.paths import publish_dir

MIN_CLASS_EXAMPLES = 2


@dataclass
class DenseConfig:
    # chosen with the contextual MiniLM (bench/results/intel_cwe_dense_minilm.json): dev top-1
    # 0.7052 -> 0.7073, test 0.6950 -> 0.6984 (kNN votes got weight 0)
    w_svm: float = 0.85
    w_lr: float = 0.15
    w_knn: float = 0.0
    k: int = 10
    power: float = 2.0  # vote weight = similarity ** power
    svm_temperature: float = 10.0  # softmax temperature of the SVM's decision values in the mix (0: the head's)
    lr_c: float = 10.0  # inverse regularisation of the logistic regression (fit time)
    lr_balanced: bool = False  # class_weight="balanced" (fit time)
    chosen_on: str = "dev half of the temporal split (bench/intel_cwe_dense.py)"


def dense_dir(model_dir: Path, embedder: Any) -> Path:
    return model_dir / ("dense-" + re.sub(r"[^A-Za-z0-9._-]+", "_", embedder.name))


class DenseCwe:
    def __init__(self, embedder: Any, store: VectorStore, classes: list[str], weights: np.ndarray,
                 bias: np.ndarray, rows: np.ndarray, vectors: np.ndarray, config: DenseConfig,
                 manifest: dict[str, Any] | None = None):
        self.embedder = embedder
        self.store = store
        self.classes = list(classes)
        self.weights = weights.astype(np.float32)  # (dim, n_classes)
        self.bias = bias.astype(np.float32)
        self.rows = rows.astype(np.int64)  # model index rows of the labelled records, in vector order
        self.vectors = vectors.astype(np.float32)  # (n_rows, dim) unit vectors
        self.config = config
        self.manifest = manifest or {}
        self._pos = {int(r): i for i, r in enumerate(self.rows)}

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, model: Any, embedder: Any, store: VectorStore | None = None, config: DenseConfig | None = None,
            log: Callable[[str], None] | None = None) -> "DenseCwe":
        from sklearn.linear_model import LogisticRegression

        log = log or (lambda m: None)
        cfg = config or DenseConfig()
        store = store or VectorStore(embedder)
        t0 = time.time()
        rows = np.array([i for i, labels in enumerate(model.cwe_labels) if labels], dtype=np.int64)
        if not len(rows):
            raise ValueError("the model has no CWE-labelled rows to fit dense features on")
        texts = [clean_description(model.descriptions[i])[0] for i in rows]
        log(f"dense features: vectors of {len(texts):,} labelled descriptions ({len(store):,} cached)")
        X = store.get(texts, persist=True, log=log)
        y = [model.cwe_labels[i][0] for i in rows]
        counts: dict[str, int] = {}
        for c in y:
            counts[c] = counts.get(c, 0) + 1
        keep = [j for j, c in enumerate(y) if counts[c] >= MIN_CLASS_EXAMPLES]
        labels = sorted({y[j] for j in keep})
        log(f"dense features: logistic regression on {len(keep):,} vectors, {len(labels)} classes")
        if len(labels) >= 2:
            clf = LogisticRegression(C=cfg.lr_c, max_iter=300, tol=1e-3,
                                     class_weight="balanced" if cfg.lr_balanced else None)
            clf.fit(X[keep], [y[j] for j in keep])
            classes = [str(c) for c in clf.classes_]
            if len(classes) == 2:
                W = np.vstack([-clf.coef_[0] / 2, clf.coef_[0] / 2]).T
                b = np.array([-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
            else:
                W, b = clf.coef_.T, clf.intercept_
        else:  # one class: certain
            classes, W, b = labels, np.zeros((X.shape[1], len(labels))), np.zeros(len(labels))
        manifest = {"embedder": embedder.name, "rows": int(len(rows)), "lr_examples": len(keep),
                    "lr_classes": len(classes), "fit_seconds": round(time.time() - t0, 1)}
        return cls(embedder, store, classes, np.asarray(W), np.asarray(b), rows, X, cfg, manifest)

    def save(self, directory: Path) -> None:
        tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        np.save(tmp / "lr_weights.npy", self.weights)
        np.save(tmp / "lr_bias.npy", self.bias)
        np.save(tmp / "rows.npy", self.rows)
        np.save(tmp / "vectors.npy", self.vectors.astype(np.float16))
        (tmp / "classes.json").write_text(json.dumps(self.classes))
        (tmp / "config.json").write_text(json.dumps(asdict(self.config), indent=1))
        (tmp / "manifest.json").write_text(json.dumps(self.manifest, indent=1))
        publish_dir(tmp, directory)

    @classmethod
    def load(cls, directory: Path, embedder: Any, store: VectorStore | None = None) -> "DenseCwe":
        cfg = DenseConfig(**json.loads((directory / "config.json").read_text()))
        return cls(embedder, store or VectorStore(embedder), json.loads((directory / "classes.json").read_text()),
                   np.load(directory / "lr_weights.npy"), np.load(directory / "lr_bias.npy"),
                   np.load(directory / "rows.npy"), np.load(directory / "vectors.npy"), cfg,
                   json.loads((directory / "manifest.json").read_text()))

    @classmethod
    def get(cls, model_dir: Path, model: Any, embedder: Any, *, build: bool = False,
            log: Callable[[str], None] | None = None) -> "DenseCwe | None":
        """The dense part saved next to ``model_dir``; fitted (and saved) only when ``build``."""
        d = dense_dir(model_dir, embedder)
        if (d / "manifest.json").is_file():
            return cls.load(d, embedder)
        if not build:
            return None
        part = cls.fit(model, embedder, log=log)
        part.save(d)
        return part

    # -- scoring ------------------------------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors (cleaned texts; cached vectors are reused, new ones are not stored)."""
        return self.store.get(list(texts), persist=False)

    def lr_probabilities(self, Q: np.ndarray) -> np.ndarray:
        d = Q @ self.weights + self.bias
        d -= d.max(axis=1, keepdims=True)
        e = np.exp(d)
        return e / e.sum(axis=1, keepdims=True)

    def similarities(self, Q: np.ndarray) -> np.ndarray:
        return Q @ self.vectors.T

    def knn_votes(self, sims: np.ndarray, excluded_rows: Sequence[int], labels: list[list[str]],
                  k: int | None = None) -> tuple[dict[str, float], list[tuple[int, float]]]:
        """(label -> vote share, [(model row, similarity)]) of one query's k nearest labelled rows."""
        k = k or self.config.k
        s = sims.copy()
        for r in excluded_rows:
            j = self._pos.get(int(r))
            if j is not None:
                s[j] = -1.0
        k = min(k, len(s))
        if k <= 0:
            return {}, []
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        votes: dict[str, float] = {}
        total = 0.0
        neigh = []
        for j in top:
            sim = float(s[j])
            if sim <= 0:
                continue
            row = int(self.rows[j])
            neigh.append((row, sim))
            w = sim ** self.config.power
            total += w
            for n, c in enumerate(labels[row]):
                votes[c] = votes.get(c, 0.0) + (w if n == 0 else w / 2)
        return ({c: v / total for c, v in votes.items()} if total else {}), neigh
