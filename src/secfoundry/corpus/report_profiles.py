"""Per-file profiles the corpus report reads (cached under ``RUN/.report_cache``): what one
kept-documents or exclusion Parquet file holds — documents, bytes, lengths, languages, sources,
drop reasons with examples. ``report_data.py`` assembles them into the run report.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

CACHE_DIR = ".report_cache"
CACHE_VERSION = 1
# log10(chars) bins for length histograms: 1 char .. 10M chars, 8 bins per decade
LEN_EDGES = np.linspace(0.0, 7.0, 57)
EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 200
_LANG_RE = r'"lang":\s*"(?P<lang>[^"]*)"'


def base_id(doc_id: str) -> str:
    """The original document of an upsampled copy (``<id>#r<k>``, see prepare/mix.py)."""
    return doc_id.split("#r", 1)[0]


# ------------------------------------------------------------------------------------ profiles
@dataclass
class DataProfile:
    """Kept documents of one Parquet partition."""

    docs: int = 0
    chars: int = 0
    bytes: int = 0
    sources: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> docs/chars/bytes/originals
    length_hist: list[int] = field(default_factory=list)  # over LEN_EDGES
    langs: dict[str, int] = field(default_factory=dict)  # metadata["lang"] (langid step); absent if never set

    def merge(self, o: "DataProfile") -> None:
        self.docs += o.docs
        self.chars += o.chars
        self.bytes += o.bytes
        for s, v in o.sources.items():
            cur = self.sources.setdefault(s, {"docs": 0, "chars": 0, "bytes": 0, "originals": 0})
            for k in cur:
                cur[k] += v.get(k, 0)
        if o.length_hist:
            self.length_hist = list(np.add(self.length_hist or [0] * len(o.length_hist), o.length_hist))
        for lg, n in o.langs.items():
            self.langs[lg] = self.langs.get(lg, 0) + n

    def scale(self, f: float) -> None:
        """Extrapolate a profile of sampled partitions to the whole phase."""
        self.docs, self.chars, self.bytes = round(self.docs * f), round(self.chars * f), round(self.bytes * f)
        self.sources = {s: {k: round(v * f) for k, v in d.items()} for s, d in self.sources.items()}
        self.length_hist = [round(v * f) for v in self.length_hist]
        self.langs = {k: round(v * f) for k, v in self.langs.items()}


@dataclass
class Example:
    id: str
    source: str
    url: str
    reason: str  # the full reason (e.g. with the classifier score)
    text: str  # first EXAMPLE_CHARS characters, whitespace collapsed


@dataclass
class ExcludedProfile:
    """Dropped documents of one exclusion Parquet file."""

    docs: int = 0
    chars: int = 0
    bytes: int = 0
    # "step|reason_key|source" -> [docs, chars, bytes]
    counts: dict[str, list[int]] = field(default_factory=dict)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # reason_key -> examples
    length_hist: list[int] = field(default_factory=list)

    def merge(self, o: "ExcludedProfile", max_examples: int = EXAMPLES_PER_REASON) -> None:
        self.docs += o.docs
        self.chars += o.chars
        self.bytes += o.bytes
        for k, v in o.counts.items():
            cur = self.counts.setdefault(k, [0, 0, 0])
            for i in range(3):
                cur[i] += v[i]
        for r, exs in o.examples.items():
            cur = self.examples.setdefault(r, [])
            cur += exs[: max(0, max_examples - len(cur))]
        if o.length_hist:
            self.length_hist = list(np.add(self.length_hist or [0] * len(o.length_hist), o.length_hist))

    def scale(self, f: float) -> None:
        self.docs, self.chars, self.bytes = round(self.docs * f), round(self.chars * f), round(self.bytes * f)
        self.counts = {k: [round(x * f) for x in v] for k, v in self.counts.items()}
        self.length_hist = [round(v * f) for v in self.length_hist]


def _length_hist(lengths: np.ndarray) -> list[int]:
    x = np.log10(np.maximum(lengths, 1))
    h, _ = np.histogram(np.clip(x, LEN_EDGES[0], LEN_EDGES[-1] - 1e-9), bins=LEN_EDGES)
    return [int(v) for v in h]


def _text_sizes(table) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.compute as pc

    text = table.column("text").fill_null("")
    chars = pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.int64)
    nbytes = pc.binary_length(text).to_numpy(zero_copy_only=False).astype(np.int64)
    return chars, nbytes


def profile_data_file(path: Path) -> DataProfile:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    cols = [c for c in ("id", "text", "source", "metadata") if c in pq.read_schema(path).names]
    t = pq.read_table(path, columns=cols)
    p = DataProfile(length_hist=[0] * (len(LEN_EDGES) - 1))
    if t.num_rows == 0:
        return p
    chars, nbytes = _text_sizes(t)
    sources = t.column("source").fill_null("").to_pylist() if "source" in cols else [""] * t.num_rows
    ids = t.column("id").to_pylist() if "id" in cols else [str(i) for i in range(t.num_rows)]
    p.docs, p.chars, p.bytes = t.num_rows, int(chars.sum()), int(nbytes.sum())
    for s, doc, c, b in zip(sources, ids, chars.tolist(), nbytes.tolist()):
        v = p.sources.setdefault(s or "unknown", {"docs": 0, "chars": 0, "bytes": 0, "originals": 0})
        v["docs"] += 1
        v["chars"] += c
        v["bytes"] += b
        v["originals"] += 0 if "#r" in (doc or "") else 1  # upsampled copies are not new documents
    p.length_hist = _length_hist(chars)
    if "metadata" in cols:
        # a vectorised regex instead of json.loads per row: metadata is a sorted-keys JSON string
        m = pc.extract_regex(t.column("metadata").fill_null("").combine_chunks(), _LANG_RE)
        langs = m.field("lang").to_pylist() if m.null_count < len(m) else []
        p.langs = dict(Counter(lg or "und" for lg in langs if lg is not None))
    return p


def profile_excluded_file(path: Path, reason_key) -> ExcludedProfile:
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    p = ExcludedProfile(length_hist=[0] * (len(LEN_EDGES) - 1))
    if t.num_rows == 0:
        return p
    chars, nbytes = _text_sizes(t)
    col = {c: t.column(c).fill_null("").to_pylist() for c in ("step", "reason", "source", "id", "url")
           if c in t.column_names}
    n = t.num_rows
    steps, reasons = col.get("step", [""] * n), col.get("reason", [""] * n)
    sources = col.get("source", [""] * n)
    p.docs, p.chars, p.bytes = n, int(chars.sum()), int(nbytes.sum())
    p.length_hist = _length_hist(chars)
    want: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        rk = reason_key(steps[i], reasons[i])
        k = f"{steps[i]}|{rk}|{sources[i] or 'unknown'}"
        cur = p.counts.setdefault(k, [0, 0, 0])
        cur[0] += 1
        cur[1] += int(chars[i])
        cur[2] += int(nbytes[i])
        if len(want[rk]) < EXAMPLES_PER_REASON:
            want[rk].append(i)
    texts = t.column("text")
    for rk, rows in want.items():
        p.examples[rk] = [asdict(Example(
            id=col.get("id", [""] * n)[i], source=sources[i], url=col.get("url", [""] * n)[i], reason=reasons[i],
            text=" ".join(str(texts[i].as_py() or "")[: EXAMPLE_CHARS * 2].split())[:EXAMPLE_CHARS]))
            for i in rows]
    return p


class ProfileCache:
    """Per-file profiles cached as JSON under ``RUN/.report_cache/<phase>/``."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.root = run_dir / CACHE_DIR
        self.enabled = enabled

    def _get(self, path: Path, kind: str, make):
        st = path.stat()
        stamp = [CACHE_VERSION, path.name, st.st_size, st.st_mtime_ns]
        cpath = self.root / path.parent.parent.name / kind / f"{path.name}.json"
        if self.enabled and cpath.exists():
            try:
                cached = json.loads(cpath.read_text())
                if cached.get("stamp") == stamp:
                    return cached["profile"]
            except (json.JSONDecodeError, OSError):
                pass
        prof = asdict(make(path))
        if self.enabled:
            from secfoundry.corpus.engine.storage import atomic_write_json

            try:
                atomic_write_json(cpath, {"stamp": stamp, "profile": prof})
            except OSError:  # a read-only run dir still gets its report
                pass
        return prof

    def data(self, path: Path) -> DataProfile:
        return DataProfile(**self._get(path, "data", profile_data_file))

    def excluded(self, path: Path) -> ExcludedProfile:
        from secfoundry.corpus.engine.workers import reason_key

        return ExcludedProfile(**self._get(path, "excluded", lambda p: profile_excluded_file(p, reason_key)))
