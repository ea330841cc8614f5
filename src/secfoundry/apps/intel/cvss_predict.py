"""predict-cvss: CVE description -> CVSS v3.1 base vector, per-metric probabilities, base score.

    from secfoundry.apps.intel.cvss_predict import CvssPredictor, predict_cvss
    predict_cvss("Buffer overflow in ... allows remote attackers to execute code").vector

Engineer I2 (prioritize): call ``predict_cvss(description)`` (a process-wide predictor, built
once) or keep a ``CvssPredictor`` and call ``predict_many``; both return ``CvssPrediction``.

Per metric (AV AC PR UI S C I A) a multinomial logistic regression on TF-IDF and the votes of
the nearest CVSS-labelled CVEs are mixed into one distribution. ``convention="adp"`` then shifts
each metric's distribution toward CISA-ADP analysts' scoring (the training labels are mostly CNA
vectors; ``cvss_convention``: measured, it did not help); ``"cna"`` (default) keeps it as learned.
The vector returned minimises the expected absolute base-score error: the candidate vectors (the two most likely values of
each metric) are weighted by the product of their metric probabilities, and the most likely
vector whose base score is the weighted median is chosen. ``most_likely_vector`` is the
per-metric argmax. Scores come from the ``cvss`` library (v3.1 rules).
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Sequence

import numpy as np

from secfoundry.apps.intel.cve_guard import clean_description
from secfoundry.apps.intel.cve_index import Exclusion
from secfoundry.apps.intel.fitted import CVSS_METRICS, IntelModel
from secfoundry.apps.intel.schemas import CveInput, CvssPrediction, MetricPrediction, Neighbour

K_NEIGHBOURS = 20
W_NEIGHBOURS = 0.4
CHUNK = 256
VALUES = {"AV": "NALP", "AC": "LH", "PR": "NLH", "UI": "NR", "S": "UC", "C": "NLH", "I": "NLH", "A": "NLH"}


@lru_cache(maxsize=1 << 14)
def base_score(vector: str) -> tuple[float, str]:
    """(base score, severity) of a CVSS v3.x vector via the ``cvss`` library."""
    from cvss import CVSS3

    c = CVSS3(vector)
    return float(c.scores()[0]), str(c.severities()[0])


def make_vector(values: dict[str, str]) -> str:
    return "CVSS:3.1/" + "/".join(f"{m}:{values[m]}" for m in CVSS_METRICS)


class CvssPredictor:
    def __init__(self, model: IntelModel | None = None, *, records: str | None = None, kb_path: str | None = None,
                 k_neighbours: int = K_NEIGHBOURS, exclude_self: bool = True, convention: str = "cna",
                 offsets: dict[str, dict[str, float]] | None = None):
        from secfoundry.apps.intel.cvss_convention import offsets_for

        self.model = model or IntelModel.get(records=records, kb_path=kb_path)
        self.convention = convention
        self.offsets = offsets if offsets is not None else offsets_for(convention)
        self.k = k_neighbours
        self.exclude_self = exclude_self
        self.mask = self.model.cvss_mask()
        self.parsed = [dict(p.split(":", 1) for p in v.split("/")[1:]) if v else {} for v in self.model.cvss_vectors]

    def predict(self, description: str, cve_id: str | None = None) -> CvssPrediction:
        return self.predict_many([CveInput(id=cve_id, description=description)])[0]

    def predict_many(self, items: Sequence[CveInput], exclusions: Sequence[Exclusion] | None = None
                     ) -> list[CvssPrediction]:
        out: list[CvssPrediction] = []
        idx = self.model.index
        for s in range(0, len(items), CHUNK):
            part = list(items[s:s + CHUNK])
            ex = list(exclusions[s:s + CHUNK]) if exclusions is not None else [
                Exclusion.for_item(it.id, it.description) if self.exclude_self else Exclusion() for it in part]
            cleaned = [clean_description(it.description) for it in part]
            Q = idx.transform([c for c, _ in cleaned])
            probs = {m: h.probabilities(Q) for m, h in self.model.cvss_heads.items()}
            sims = idx.similarities(Q)
            for i, it in enumerate(part):
                pred = self._one(it, {m: (self.model.cvss_heads[m].classes, probs[m][i]) for m in probs},
                                 sims[i], ex[i])
                if cleaned[i][1]:
                    pred.warnings.append(f"{len(cleaned[i][1])} sentence(s) ignored as instructions to a model")
                out.append(pred)
        return out

    def _one(self, item: CveInput, clf: dict[str, tuple[list[str], np.ndarray]], sims: np.ndarray,
             excl: Exclusion) -> CvssPrediction:
        excluded = self.model.index.excluded_rows(excl)
        neigh = self.model.index.neighbours(sims, self.k, excluded, self.mask)
        dist: dict[str, dict[str, float]] = {}
        for m in CVSS_METRICS:
            classes, p = clf[m]
            d = {v: 0.0 for v in VALUES[m]}
            for c, q in zip(classes, p):
                if c in d:
                    d[c] += float(q)
            votes = {v: 0.0 for v in VALUES[m]}
            total = 0.0
            for n in neigh:
                v = self.parsed[n.row].get(m)
                if v in votes:
                    w = n.similarity ** 2
                    votes[v] += w
                    total += w
            if total > 0:
                d = {v: (1 - W_NEIGHBOURS) * d[v] + W_NEIGHBOURS * votes[v] / total for v in d}
            z = sum(d.values()) or 1.0
            dist[m] = {v: x / z for v, x in d.items()}
        if self.offsets:
            from secfoundry.apps.intel.cvss_convention import shift

            dist = shift(dist, self.offsets)
        best = {m: max(dist[m], key=lambda v: (dist[m][v], v)) for m in CVSS_METRICS}
        # candidate vectors: the two most likely values of each metric
        options = [sorted(dist[m], key=lambda v: -dist[m][v])[:2] for m in CVSS_METRICS]
        cands = []
        for combo in itertools.product(*options):
            vals = dict(zip(CVSS_METRICS, combo))
            w = float(np.prod([dist[m][vals[m]] for m in CVSS_METRICS]))
            cands.append((base_score(make_vector(vals))[0], w, vals))
        wsum = sum(w for _, w, _ in cands) or 1.0
        expected = sum(s * w for s, w, _ in cands) / wsum
        cands.sort(key=lambda t: t[0])
        acc, median = 0.0, cands[-1][0]
        for s, w, _ in cands:
            acc += w / wsum
            if acc >= 0.5:
                median = s
                break
        chosen = max((c for c in cands if c[0] == median), key=lambda c: c[1])[2]
        vector = make_vector(chosen)
        score, sev = base_score(vector)
        metrics = {m: MetricPrediction(value=chosen[m], probability=round(dist[m][chosen[m]], 4),
                                       probabilities={v: round(x, 4) for v, x in dist[m].items()})
                   for m in CVSS_METRICS}
        nb = [Neighbour(id=n.id, similarity=round(n.similarity, 4), cvss=self.model.cvss_vectors[n.row],
                        text=" ".join(self.model.descriptions[n.row].split()[:30])) for n in neigh[:3]]
        return CvssPrediction(id=item.id, vector=vector, score=score, severity=sev,
                              expected_score=round(expected, 2), most_likely_vector=make_vector(best),
                              metrics=metrics, neighbours=nb, excluded=len(excluded))


_DEFAULT: CvssPredictor | None = None


def predict_cvss(description: str, cve_id: str | None = None) -> CvssPrediction:
    """One prediction with the default (cached) model; the predictor is built on first call."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = CvssPredictor()
    return _DEFAULT.predict(description, cve_id)
