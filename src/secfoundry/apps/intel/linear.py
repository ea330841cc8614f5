"""Linear classifiers on TF-IDF features, stored as sparse weights (npz + JSON, no pickle).

``LinearHead.fit_svc`` trains a one-vs-rest linear SVM (liblinear) and keeps weights above a
small threshold (the full dense matrix for ~400 CWE classes x 120k features would be ~400 MB);
``LinearHead.fit_logistic`` trains a multinomial logistic regression for the few-class CVSS
metrics. ``probabilities`` turns decision values into a calibrated distribution (softmax with a
temperature; logistic heads use temperature 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from secfoundry.apps.intel.lexical import load_csr, save_csr

PRUNE = 1e-3  # weights with a smaller magnitude are dropped from the stored matrix


class LinearHead:
    def __init__(self, classes: list[str], weights: sp.csr_matrix, bias: np.ndarray, temperature: float = 1.0):
        self.classes = list(classes)
        self.weights = weights.tocsr().astype(np.float32)  # (n_classes, n_features)
        self.weights_t = self.weights.T.tocsr()
        self.bias = bias.astype(np.float32)
        self.temperature = float(temperature)
        self.index = {c: i for i, c in enumerate(self.classes)}

    @staticmethod
    def _pruned(coef: np.ndarray) -> sp.csr_matrix:
        coef = np.where(np.abs(coef) < PRUNE, 0.0, coef).astype(np.float32)
        return sp.csr_matrix(coef)

    @classmethod
    def fit_svc(cls, X: sp.csr_matrix, y: Sequence[str], c: float = 0.5, temperature: float = 6.0) -> "LinearHead":
        from sklearn.svm import LinearSVC

        clf = LinearSVC(C=c, tol=1e-3, max_iter=2000)
        clf.fit(X, list(y))
        coef = clf.coef_ if len(clf.classes_) > 2 else np.vstack([-clf.coef_[0], clf.coef_[0]])
        bias = clf.intercept_ if len(clf.classes_) > 2 else np.array([-clf.intercept_[0], clf.intercept_[0]])
        return cls([str(x) for x in clf.classes_], cls._pruned(coef), np.asarray(bias), temperature)

    @classmethod
    def fit_logistic(cls, X: sp.csr_matrix, y: Sequence[str], c: float = 4.0) -> "LinearHead":
        from sklearn.linear_model import LogisticRegression

        labels = sorted(set(y))
        if len(labels) == 1:  # a metric with one observed value: certain
            return cls(labels, sp.csr_matrix((1, X.shape[1]), dtype=np.float32), np.zeros(1), 1.0)
        clf = LogisticRegression(C=c, max_iter=300, tol=1e-3)
        clf.fit(X, list(y))
        coef = clf.coef_ if len(clf.classes_) > 2 else np.vstack([-clf.coef_[0] / 2, clf.coef_[0] / 2])
        bias = clf.intercept_ if len(clf.classes_) > 2 else np.array([-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
        return cls([str(x) for x in clf.classes_], cls._pruned(coef), np.asarray(bias), 1.0)

    def decision(self, X: sp.csr_matrix) -> np.ndarray:
        return np.asarray((X @ self.weights_t).todense(), dtype=np.float32) + self.bias

    def probabilities(self, X: sp.csr_matrix) -> np.ndarray:
        d = self.decision(X) * self.temperature
        d -= d.max(axis=1, keepdims=True)
        e = np.exp(d)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_csr(directory / f"{name}.weights.npz", self.weights)
        np.save(directory / f"{name}.bias.npy", self.bias)
        (directory / f"{name}.json").write_text(json.dumps({"classes": self.classes,
                                                            "temperature": self.temperature}))

    @classmethod
    def load(cls, directory: Path, name: str) -> "LinearHead":
        meta = json.loads((directory / f"{name}.json").read_text())
        return cls(meta["classes"], load_csr(directory / f"{name}.weights.npz"),
                   np.load(directory / f"{name}.bias.npy"), meta["temperature"])
