"""map-cwe: CVE description -> ranked, KB-validated CWE ids with scores and evidence.

    from secfoundry.apps.intel.cwe_map import CweMapper
    m = CweMapper()                                   # cached model (fitted on first use)
    m.map("SQL injection in the id parameter of login.php ...").cwe[:3]
    m.map_many([CveInput(id="CVE-2024-1234", description="...")])

Signals, combined into one score per candidate:
* ``classifier``: a one-vs-rest linear SVM on TF-IDF (softmax-calibrated) trained on the CNA/ADP
  labels of ~23k CVE records plus each CWE's own text;
* ``neighbours``: similarity-weighted votes of the nearest labelled CVEs (the leakage rule
  removes the item itself and any record with the same normalized description);
* ``keyword``: the CWE's name phrase or alternate terms appear in the description (the VulDB
  template "... leads to sql injection" names the weakness);
* ``dense_lr`` / ``dense_knn`` (when the model has its dense part, ``dense_cwe``): a logistic
  regression on MiniLM vectors of the description and the votes of the nearest labelled CVEs in
  that space; mixed with the classifier as ``w_svm * classifier + w_lr * dense_lr + w_knn *
  dense_knn`` (weights from the dense part's config, chosen on the temporal dev split).
Every candidate passes ``CweCatalog.validate`` (deprecated -> replacement, unknown -> dropped) and
entries whose CWE mapping usage is "Prohibited" (categories, views) are never emitted.
With an LLM (``llm=`` a model spec or a LanguageModel) the top candidates are reranked: the model
only picks among them (``cwe_rerank``).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from secfoundry.apps.intel.cve_guard import clean_description
from secfoundry.apps.intel.cve_index import Exclusion, norm_description
from secfoundry.apps.intel.cwe_catalog import CweCatalog
from secfoundry.apps.intel.fitted import IntelModel
from secfoundry.apps.intel.schemas import CveInput, CweCandidate, CweMapping, Neighbour

K_NEIGHBOURS = 20
W_CLASSIFIER, W_NEIGHBOURS, W_KEYWORD = 1.0, 0.0, 0.05
NVD_ROLLUP = 0.75  # level="nvd": share of a non-1003 candidate's score moved to its view-1003 ancestor
LEVELS = ("nvd", "cna")
TOP = 10
CHUNK = 256


def _term_index(catalog: CweCatalog) -> dict[str, list[str]]:
    """Normalized phrase -> CWE ids: the quoted short name ("('SQL Injection')"), alternate terms
    of two or more words (single words such as "CSS" match too much prose)."""
    out: dict[str, list[str]] = {}
    for e in catalog.entries.values():
        if e.deprecated or e.type != "weakness" or e.usage == "Prohibited":
            continue
        terms = re.findall(r"\('([^']{4,60})'\)", e.name) + [t for t in e.alternate_terms if " " in t.strip()]
        for t in terms:
            n = norm_description(t)
            if len(n) >= 6 and e.id not in out.setdefault(n, []):
                out[n].append(e.id)
    return out


class CweMapper:
    def __init__(self, model: IntelModel | None = None, catalog: CweCatalog | None = None, *,
                 llm: Any = None, records: str | None = None, kb_path: str | None = None,
                 k_neighbours: int = K_NEIGHBOURS, top: int = TOP, exclude_self: bool = True, level: str = "nvd",
                 dense: bool = True, dense_config: Any = None):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        self.level = level
        self.catalog = catalog or CweCatalog.from_kb(kb_path)
        self.model = model or IntelModel.get(records=records, catalog=self.catalog)
        self.k = k_neighbours
        self.top = top
        self.exclude_self = exclude_self
        self.terms = _term_index(self.catalog)
        self.labelled = self.model.labelled_mask()
        self.dense = self.model.dense if dense else None
        self.dense_config = dense_config or (self.dense.config if self.dense is not None else None)
        if self.dense is not None:
            hidx = self.model.cwe_head.index
            pairs = [(i, hidx[c]) for i, c in enumerate(self.dense.classes) if c in hidx]
            self._lr_cols = np.array([p[0] for p in pairs], dtype=np.int64)
            self._head_cols = np.array([p[1] for p in pairs], dtype=np.int64)
        self.reranker = None
        if llm is not None:
            from secfoundry.apps.intel.cwe_rerank import CweReranker

            self.reranker = CweReranker(llm, self.catalog)

    # -- public API --------------------------------------------------------------------------------
    def map(self, description: str, cve_id: str | None = None) -> CweMapping:
        return self.map_many([CveInput(id=cve_id, description=description)])[0]

    def map_many(self, items: Sequence[CveInput], exclusions: Sequence[Exclusion] | None = None
                 ) -> list[CweMapping]:
        out: list[CweMapping] = []
        for s in range(0, len(items), CHUNK):
            part = list(items[s:s + CHUNK])
            ex = list(exclusions[s:s + CHUNK]) if exclusions is not None else [
                Exclusion.for_item(it.id, it.description) if self.exclude_self else Exclusion() for it in part]
            out.extend(self._map_chunk(part, ex))
        if self.reranker is not None:
            out = [self.reranker.rerank(it.description, m) for it, m in zip(items, out)]
        return out

    def _roll_up(self, scored: dict[str, tuple[float, dict[str, float]]]) -> dict[str, tuple[float, dict[str, float]]]:
        """Move part of each non-1003 candidate's score to its view-1003 ancestor (NVD's level)."""
        out = dict(scored)
        for cwe, (s, sig) in scored.items():
            up = self.catalog.nvd_level(cwe)
            if up is None or self.catalog.validate(up) != up or self.catalog.entries[up].usage == "Prohibited":
                continue
            moved = NVD_ROLLUP * s
            ps, psig = out.get(up, (0.0, {"classifier": 0.0, "neighbours": 0.0, "keyword": 0.0}))
            out[up] = (ps + moved, dict(psig, rolled_up=round(psig.get("rolled_up", 0.0) + moved, 4)))
            cs, csig = out[cwe]
            out[cwe] = (cs - moved, csig)
        return out

    # -- internals ---------------------------------------------------------------------------------
    def _map_chunk(self, items: list[CveInput], exclusions: list[Exclusion]) -> list[CweMapping]:
        idx = self.model.index
        cleaned = [clean_description(it.description) for it in items]
        Q = idx.transform([c for c, _ in cleaned])
        probs = self.model.cwe_head.probabilities(Q)
        sims = idx.similarities(Q)
        p_lr = d_sims = None
        if self.dense is not None:
            if self.dense_config.svm_temperature:  # the mix was tuned with another softmax temperature
                d = self.model.cwe_head.decision(Q) * self.dense_config.svm_temperature
                e = np.exp(d - d.max(axis=1, keepdims=True))
                probs = e / e.sum(axis=1, keepdims=True)
            V = self.dense.embed([c for c, _ in cleaned])
            lr = self.dense.lr_probabilities(V)
            p_lr = np.zeros_like(probs)
            p_lr[:, self._head_cols] = lr[:, self._lr_cols]
            d_sims = self.dense.similarities(V)
        return [self._one(it, cleaned[i][0], cleaned[i][1], probs[i], sims[i], exclusions[i],
                          None if p_lr is None else p_lr[i], None if d_sims is None else d_sims[i])
                for i, it in enumerate(items)]

    def _one(self, item: CveInput, text: str, dropped: list[str], p_clf: np.ndarray, sims: np.ndarray,
             excl: Exclusion, p_lr: np.ndarray | None = None, d_sims: np.ndarray | None = None) -> CweMapping:
        head = self.model.cwe_head
        excluded = self.model.index.excluded_rows(excl)
        w_svm, w_lr, w_knn = W_CLASSIFIER, 0.0, 0.0
        p_dknn: dict[str, float] = {}
        p_mix = p_clf
        if p_lr is not None and d_sims is not None and self.dense_config is not None:
            cfg = self.dense_config
            w_svm, w_lr, w_knn = cfg.w_svm, cfg.w_lr, cfg.w_knn
            p_mix = w_svm * p_clf + w_lr * p_lr
            if w_knn > 0:
                p_dknn, _ = self.dense.knn_votes(d_sims, excluded, self.model.cwe_labels, cfg.k)
        neigh = self.model.index.neighbours(sims, self.k, excluded, self.labelled)
        votes: dict[str, float] = {}
        support: dict[str, list[Neighbour]] = {}
        total = 0.0
        for n in neigh:
            w = n.similarity ** 2
            labels = self.model.cwe_labels[n.row]
            total += w
            for j, c in enumerate(labels):
                votes[c] = votes.get(c, 0.0) + (w if j == 0 else w / 2)
                support.setdefault(c, []).append(Neighbour(
                    id=n.id, similarity=round(n.similarity, 4), cwe=labels,
                    text=" ".join(self.model.descriptions[n.row].split()[:30])))
        conf = max((n.similarity for n in neigh), default=0.0)  # far neighbours vote less
        p_knn = {c: conf * v / total for c, v in votes.items()} if total else {}
        text_n = f" {norm_description(text)} "
        matched: dict[str, list[str]] = {}
        for term, cwes in self.terms.items():
            if f" {term} " in text_n:
                for c in cwes:
                    matched.setdefault(c, []).append(term)
        top_clf = np.argsort(-p_mix)[: self.top * 2]
        cands = ({head.classes[j] for j in top_clf} if text.strip() else set()) | set(p_knn) | set(matched)
        if text.strip():
            cands |= set(p_dknn)
        scored: dict[str, tuple[float, dict[str, float]]] = {}
        for raw in cands:
            cwe = self.catalog.validate(raw)
            if cwe is None or self.catalog.entries[cwe].usage == "Prohibited":  # categories: never a mapping
                continue
            j = head.index.get(raw)
            sig = {"classifier": float(p_clf[j]) if j is not None else 0.0, "neighbours": p_knn.get(raw, 0.0),
                   "keyword": 1.0 if raw in matched else 0.0}
            s = w_svm * sig["classifier"] + W_NEIGHBOURS * sig["neighbours"] + W_KEYWORD * sig["keyword"]
            if p_lr is not None:
                sig["dense_lr"] = float(p_lr[j]) if j is not None else 0.0
                sig["dense_knn"] = p_dknn.get(raw, 0.0)
                s += w_lr * sig["dense_lr"] + w_knn * sig["dense_knn"]
            if cwe in scored:  # a deprecated id folded into its replacement
                prev, psig = scored[cwe]
                sig = {k: max(v, psig.get(k, 0.0)) for k, v in sig.items()}
                s = s + prev
            scored[cwe] = (s, sig)
        if self.level == "nvd":
            scored = self._roll_up(scored)
        ranked = sorted(scored.items(), key=lambda kv: (-kv[1][0], kv[0]))[: self.top]
        out = []
        for r, (cwe, (s, sig)) in enumerate(ranked, start=1):
            e = self.catalog.entries[cwe]
            out.append(CweCandidate(id=cwe, name=e.name, score=round(min(1.0, s), 4), rank=r,
                                    signals={k: round(v, 4) for k, v in sig.items()}, usage=e.usage,
                                    abstraction=e.abstraction, neighbours=support.get(cwe, [])[:3],
                                    matched_terms=matched.get(cwe, [])))
        warnings = [] if out else ["no CWE candidate: the description shares no vocabulary with the index"]
        if dropped:
            warnings.append(f"{len(dropped)} sentence(s) ignored as instructions to a model")
        return CweMapping(id=item.id, cwe=[c.id for c in out], candidates=out, excluded=len(excluded),
                          warnings=warnings)
