"""The fitted intel models (TF-IDF index + CWE head + CVSS heads), built once and cached.

``IntelModel.get()`` loads ``SECFOUNDRY_HOME/intel/models/<key>/`` or fits it from the labelled
CVE records (~1-3 minutes on 2 cores) and the KB's CWE catalog. The key hashes the records file,
the CWE catalog version, the decontamination set, the cutoff and ``FORMAT``.

Decontamination: by default every CVE of CTIBench RCM, RCM-2021 and VSP found in the local
benchmark copy (``core.paths.benchmark_data_dir``) is left out of the fit, by CVE id and by
normalized description (368 ids and 369 descriptions on the shared data), so the system can be
scored on CTIBench; per-query neighbour exclusion (``Exclusion.for_item``) comes on top.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from secfoundry.apps.intel.cve_guard import clean_description
from secfoundry.apps.intel.cve_index import CveRecord, Exclusion, desc_key, load_records, records_path
from secfoundry.apps.intel.cwe_catalog import CweCatalog
from secfoundry.apps.intel.lexical import LexicalIndex
from secfoundry.apps.intel.linear import LinearHead
from secfoundry.core.paths import publish_dir

FORMAT = 2
CVSS_METRICS = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")
CTIBENCH_FILES = ("cti-rcm.tsv", "cti-rcm-2021.tsv", "cti-vsp.tsv")
MIN_CLASS_EXAMPLES = 2


def ctibench_exclusion(data_dir: str | os.PathLike[str] | None = None) -> tuple[Exclusion, list[str]]:
    """CVE ids (from the URL column) and descriptions of the local CTIBench RCM/VSP files."""
    from secfoundry.core.paths import benchmark_data_dir

    base = benchmark_data_dir(data_dir)
    pairs: list[tuple[str | None, str | None]] = []
    found = []
    if base is not None:
        csv.field_size_limit(1 << 26)
        for name in CTIBENCH_FILES:
            p = Path(base) / "ctibench" / name
            if not p.is_file():
                continue
            found.append(str(p))
            with p.open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                    url = (row.get("URL") or "").rstrip("/")
                    cid = url.rsplit("/", 1)[-1].upper() if "CVE-" in url.upper() else None
                    pairs.append((cid, row.get("Description") or None))
    return Exclusion.union(pairs), found


def file_digest(path: Path) -> str:
    """sha1 of a file's bytes (the records file is ~5 MB: ~20 ms)."""
    h = hashlib.sha1()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_key(records: Path, catalog: CweCatalog, exclude: Exclusion, published_before: str | None) -> str:
    """The cache key of a fit: the records file's content (not its path or mtime: a copied or
    re-mounted data directory must not force a refit), the catalog, the exclusion, the cutoff."""
    return hashlib.sha1(json.dumps([FORMAT, file_digest(records), catalog.version, len(catalog),
                                    exclude.fingerprint(), published_before]).encode()).hexdigest()[:16]


@dataclass
class IntelModel:
    index: LexicalIndex
    cwe_head: LinearHead
    cvss_heads: dict[str, LinearHead]
    cwe_labels: list[list[str]]  # per index row
    cvss_vectors: list[str]  # per index row ("" when none)
    descriptions: list[str]  # per index row (evidence snippets)
    manifest: dict[str, Any] = field(default_factory=dict)
    dense: Any = None  # dense_cwe.DenseCwe when its part exists next to the model (or was built)
    directory: Path | None = None

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, records: list[CveRecord], catalog: CweCatalog, exclude: Exclusion | None = None,
            published_before: str | None = None, log: Callable[[str], None] | None = None) -> "IntelModel":
        log = log or (lambda m: None)
        t0 = time.time()
        kept, n_excluded, n_after = [], 0, 0
        for r in records:
            if exclude is not None and exclude.matches(r.id, desc_key(r.description)):
                n_excluded += 1
                continue
            if published_before and not (r.published and r.published < published_before):
                n_after += 1
                continue
            kept.append(r)
        if not kept:
            raise ValueError("no CVE records left to fit on")
        log(f"fitting TF-IDF on {len(kept):,} records ({n_excluded} decontaminated)")
        index = LexicalIndex.fit([clean_description(r.description)[0] for r in kept], [r.id for r in kept],
                                 [desc_key(r.description) for r in kept])
        X = index.matrix
        counts: dict[str, int] = {}
        for r in kept:
            if r.cwe:
                counts[r.cwe[0]] = counts.get(r.cwe[0], 0) + 1
        rows = [i for i, r in enumerate(kept) if r.cwe]
        y = [kept[i].cwe[0] for i in rows]
        # CWE text as one extra example per class seen in the records: rare classes get support.
        extra = [c for c in sorted(counts) if c in catalog and catalog.entries[c].description]
        Xc = index.transform([catalog.entries[c].text() for c in extra])
        import scipy.sparse as sp

        Xw = sp.vstack([X[rows], Xc]).tocsr()
        yw = y + extra
        total: dict[str, int] = {}
        for c in yw:
            total[c] = total.get(c, 0) + 1
        keep = [i for i, c in enumerate(yw) if total[c] >= MIN_CLASS_EXAMPLES]
        log(f"fitting the CWE head on {len(keep):,} examples, {len({yw[i] for i in keep})} classes")
        cwe_head = LinearHead.fit_svc(Xw[keep], [yw[i] for i in keep])
        heads: dict[str, LinearHead] = {}
        crow = [i for i, r in enumerate(kept) if r.cvss3]
        parsed = [dict(p.split(":", 1) for p in kept[i].cvss3.split("/")[1:]) for i in crow]
        for m in CVSS_METRICS:
            ok = [j for j, p in enumerate(parsed) if m in p]
            log(f"fitting CVSS {m} on {len(ok):,} vectors")
            heads[m] = LinearHead.fit_logistic(X[[crow[j] for j in ok]], [parsed[j][m] for j in ok])
        manifest = {"format": FORMAT, "records": len(records), "fit_rows": len(kept),
                    "decontaminated": n_excluded, "after_cutoff": n_after, "published_before": published_before,
                    "cwe_examples": len(keep), "cwe_classes": len(cwe_head.classes), "cvss_rows": len(crow),
                    "catalog_version": catalog.version, "fit_seconds": round(time.time() - t0, 1)}
        return cls(index, cwe_head, heads, [r.cwe for r in kept], [r.cvss3 for r in kept],
                   [r.description for r in kept], manifest)

    # -- persistence -------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
        self.index.save(tmp)
        self.cwe_head.save(tmp, "cwe")
        for m, h in self.cvss_heads.items():
            h.save(tmp, f"cvss_{m}")
        (tmp / "rows_meta.json").write_text(json.dumps({"cwe": self.cwe_labels, "cvss": self.cvss_vectors,
                                                        "descriptions": self.descriptions}))
        (tmp / "manifest.json").write_text(json.dumps(self.manifest, indent=1))
        publish_dir(tmp, directory)

    @classmethod
    def load(cls, directory: Path) -> "IntelModel":
        meta = json.loads((directory / "rows_meta.json").read_text())
        return cls(LexicalIndex.load(directory), LinearHead.load(directory, "cwe"),
                   {m: LinearHead.load(directory, f"cvss_{m}") for m in CVSS_METRICS},
                   meta["cwe"], meta["cvss"], meta["descriptions"],
                   json.loads((directory / "manifest.json").read_text()))

    @classmethod
    def get(cls, records: str | os.PathLike[str] | None = None, catalog: CweCatalog | None = None,
            kb_path: str | os.PathLike[str] | None = None, decontaminate: bool = True,
            exclude: Exclusion | None = None, published_before: str | None = None,
            cache: Path | None = None, log: Callable[[str], None] | None = None,
            dense: bool | None = None, embedder: Any = None) -> "IntelModel":
        """The cached model for these inputs, fitted on first use.

        ``dense``: None loads the dense part (``dense_cwe``) when it was built, True builds it
        when missing (embeds ~23k descriptions once: minutes), False leaves it out. ``embedder``:
        an embedder or a spec for ``vectors.intel_embedder`` (default ``SECFOUNDRY_INTEL_EMBEDDER``
        or MiniLM)."""
        from secfoundry.core.paths import cache_dir

        catalog = catalog or CweCatalog.from_kb(kb_path)
        rp = records_path(records)
        excl = exclude or Exclusion()
        if decontaminate:
            bench, _ = ctibench_exclusion()
            excl = Exclusion(excl.ids | bench.ids, excl.desc_keys | bench.desc_keys)
        key = model_key(rp, catalog, excl, published_before)
        d = (cache or cache_dir("intel", "models")) / key
        log = log or (lambda m: print(f"intel: {m}", file=sys.stderr))
        if (d / "manifest.json").is_file():
            model = cls.load(d)
        else:
            log(f"building the intel model from {rp} (once; cached in {d})")
            recs, stats = load_records(rp, validate=catalog.validate, errors=[])
            model = cls.fit(recs, catalog, excl, published_before, log)
            model.manifest.update(records_file=str(rp), load_stats=stats, key=key)
            model.save(d)
        model.directory = d
        if dense is not False:
            model.attach_dense(embedder, build=bool(dense), log=log)
        return model

    def attach_dense(self, embedder: Any = None, *, build: bool = False,
                     log: Callable[[str], None] | None = None) -> Any:
        """Load (or, with ``build``, fit and save) the dense part next to this model."""
        from secfoundry.apps.intel.dense_cwe import DenseCwe
        from secfoundry.apps.intel.vectors import intel_embedder

        try:
            emb = intel_embedder(embedder) if embedder is None or isinstance(embedder, str) else embedder
        except (RuntimeError, ImportError, ValueError):
            if build:
                raise
            emb = None
        if emb is None or self.directory is None:
            self.dense = None
            return None
        self.dense = DenseCwe.get(self.directory, self, emb, build=build, log=log)
        if self.dense is not None:
            self.manifest["dense"] = self.dense.manifest
        return self.dense

    def labelled_mask(self) -> np.ndarray:
        return np.array([bool(x) for x in self.cwe_labels])

    def cvss_mask(self) -> np.ndarray:
        return np.array([bool(x) for x in self.cvss_vectors])
