"""Benchmark items as an index, and item-level matching of corpus text against it.

Decontamination (the ``decontaminate`` step) and the eval-side contamination check
(``secfoundry eval contamination``) share this module. The unit is a benchmark *item*, not an
n-gram: a piece of corpus text contaminates item X only when

* it holds a substantial share (``min_share``, default 0.5) of X's *informative* word n-grams
  (13-grams; 8-grams for items whose question has under 40 words, so that one edited word does
  not hide a short item) or of its question's, or a verbatim run of ``min_run`` consecutive
  informative n-grams of X (a long quote of a threat report item), or
* X's whole question is short (``min_words`` .. ``ngram`` - 1 words) and occurs verbatim, or
* (CTIBench RCM / RCM-2021 / VSP) the text is about X's CVE id (handled by the step).

Informative n-grams exclude *templates*: n-grams shared by ``bench_template_items`` or more
distinct benchmark items ("It is possible to initiate the attack remotely. The exploit has been
disclosed to the public ..."), and n-grams found in ``corpus_template_docs`` or more corpus
documents — unless most of the item is that frequent (then the item itself is what is being
copied, and its n-grams stay). Only the matching spans are cut (plus, for a multiple-choice
item, its options right after the question); every cut carries its evidence.

Tokens are word characters (NFKC, lower case); CJK characters are one token each, so Chinese
SecBench items are matched as well as English ones.

Over 400 lines on purpose: one concept, the item index, whose build (template detection, corpus
counts) and whose matcher (coverage, runs, span growth, cuts) share the same hashed n-gram arrays
and item tables; the step and the eval check only call ``ItemIndex`` and ``cut_spans``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from secfoundry.corpus.prepare.grams import (BITS_MASK, gram_bitmap, has_short_question, head_hashes,  # noqa: F401
                                             in_sorted, member, uniq, window_hashes, window_hashes_at,
                                             window_hashes_multi)
from secfoundry.corpus.prepare.text import token_hashes

CVE_RE = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)
CVE_BENCHMARKS = ("ctibench-rcm", "ctibench-rcm-2021", "ctibench-vsp")
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+", re.UNICODE)
# What may remain of a line around a cut span for the whole line to go: bullets, option letters,
# "Question:", "Answer:", punctuation.
_LINE_REST = re.compile(r"^[\s\W]*(?:(?:[A-Ea-e]|\d{1,3})[).:\]]|Q\d*[.:]|Question\s*\d*:?|Answer:?|Options?:?)?[\s\W]*$")


@dataclass
class MatchConfig:
    ngram: int = 13
    short_ngram: int = 8  # for items whose question has fewer than short_item_tokens words
    short_item_tokens: int = 40
    min_words: int = 8  # shorter item texts are not indexed (too generic to match safely)
    min_share: float = 0.5  # share of an item's informative n-grams that must be present
    min_hits: int = 3  # a match needs at least this many informative n-grams (or all the item has)
    min_coverage: float = 0.8  # or this share of the item's informative words covered (edited copies)
    min_run: int = 20  # or this many consecutive informative n-grams of a long item (a long quote)
    bench_template_items: int = 3  # an n-gram in >= this many distinct items is a template
    corpus_template_docs: int = 20  # an n-gram in >= this many corpus documents is a template ...
    item_common_share: float = 0.8  # ... unless >= this share of the item is that common
    option_window: int = 80  # words after a matched question searched for its options


# -- tokens and hashes ----------------------------------------------------------------------------

def tokens(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Normalised tokens of ``text`` and their character spans in ``text``."""
    toks, spans = [], []
    ascii_ = text.isascii()
    for m in _TOKEN_RE.finditer(text):
        t = m.group()
        toks.append(t.lower() if ascii_ else unicodedata.normalize("NFKC", t).lower())
        spans.append(m.span())
    return toks, spans


def token_list(text: str) -> list[str]:
    """The tokens of :func:`tokens` without their spans (one C-level ``findall``; lower-casing
    ASCII text first gives the same tokens, since it changes neither lengths nor word characters)."""
    if text.isascii():
        return _TOKEN_RE.findall(text.lower())
    return [unicodedata.normalize("NFKC", t).lower() for t in _TOKEN_RE.findall(text)]


def text_grams(text: str, n: int) -> np.ndarray:
    return uniq(window_hashes(token_hashes(token_list(text)), n))


# -- benchmark items --------------------------------------------------------------------------------

@dataclass
class BenchItem:
    key: str  # "<benchmark>:<item id>" of the first benchmark that has this text
    owners: list[str]  # every "<benchmark>:<item id>" with the same normalised text
    question: str
    options: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # long free-text answers (SecBench SAQ)
    cves: list[str] = field(default_factory=list)  # CTIBench RCM/VSP: the CVE the item is about
    url: str = ""  # where the benchmark says the item comes from (CTIBench: ATT&CK page, NVD entry)

    @property
    def benchmark(self) -> str:
        return self.key.rsplit(":", 1)[0]

    def units(self) -> list[str]:
        return [self.question, *self.options, *self.extra]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "owners": self.owners, "question": self.question, "options": self.options,
                "extra": self.extra, "cves": self.cves, "url": self.url}


def _not_on_disk(task: Any, data_dir: str | None) -> str | None:
    """Why a benchmark's files are not available without a download (None: they are)."""
    from secfoundry.eval import data as bdata

    for key in getattr(task, "data_files", ()) or ():
        try:
            bdata.resolve(bdata.FILES[key], data_dir, download=False)
        except bdata.DataUnavailable:
            return f"{bdata.FILES[key].relpath} is not on disk (download-only; fetch it with the eval harness first)"
    return None


def load_benchmark_items(names: list[str] | None = None, data_dir: str | None = None, min_words: int = 8,
                         download: bool = False) -> tuple[list[BenchItem], dict[str, Any]]:
    """Every item of every benchmark the eval harness knows (or ``names``), merged across
    benchmarks that share an item; plus what was loaded and what could not be (download-only
    files that are not on disk, MMLU without a local copy). Nothing is downloaded unless
    ``download``."""
    from pathlib import Path

    from secfoundry.eval.benchmarks import get_task, list_tasks

    wanted = names or list_tasks()
    by_text: dict[str, BenchItem] = {}
    info: dict[str, Any] = {"loaded": {}, "missing": {}}
    for name in wanted:
        try:
            task = get_task(name)
            why = None if download else _not_on_disk(task, data_dir)
            if why:
                info["missing"][name] = why
                continue
            items = task.load(Path(data_dir) if data_dir else None)
        except Exception as e:  # noqa: BLE001 - download-only files absent offline, MMLU not bundled
            info["missing"][name] = f"{type(e).__name__}: {str(e)[:160]}"
            continue
        info["loaded"][name] = len(items)
        for it in items:
            q = str(it.question or "")
            opts = [str(v) for v in (it.options or {}).values() if v]
            extra = [it.gold] if isinstance(it.gold, str) and len(it.gold.split()) >= min_words and not opts else []
            norm = " ".join(token_list(" ".join([q, *opts, *extra])))
            if not norm:
                continue
            ref = f"{name}:{it.id}"
            cur = by_text.get(norm)
            if cur is None:
                cur = by_text[norm] = BenchItem(ref, [], q, opts, extra, url=str(it.meta.get("url", "") or ""))
            cur.owners.append(ref)
            if name in CVE_BENCHMARKS:
                found = {m.upper() for m in CVE_RE.findall(" ".join([q, str(it.meta.get("url", ""))]))}
                cur.cves = sorted(set(cur.cves) | found)
    return list(by_text.values()), info


# -- the index --------------------------------------------------------------------------------------

@dataclass
class Match:
    item: int  # index into ItemIndex.items
    why: str  # "share 0.92 of 25 informative 13-grams", "run of 31 13-grams", "exact question (11 words)"
    spans: list[tuple[int, int]]  # character spans in the matched text
    share: float = 1.0


class ItemIndex:
    """Informative n-grams of every item (CSR: sorted gram hashes -> item ids, and whether the
    gram is in the item's question) and the exact hashes of short questions, by length.

    An item is indexed with ``ngram``-grams (13) when its question has at least
    ``short_item_tokens`` words, else with ``short_ngram``-grams (8): one edited word kills 13
    windows, which would leave nothing of a 20-word question to match."""

    def __init__(self, items: list[BenchItem], cfg: MatchConfig | None = None):
        self.items = items
        self.cfg = cfg or MatchConfig()
        self.gram = np.zeros(0, dtype=np.uint64)  # sorted unique informative gram hashes
        self.ptr = np.zeros(1, dtype=np.int64)
        self.owner = np.zeros(0, dtype=np.int32)
        self.qflag = np.zeros(0, dtype=bool)  # owner's gram is in its question
        self.total = np.zeros(len(items), dtype=np.int32)  # informative grams per item
        self.qtotal = np.zeros(len(items), dtype=np.int32)  # ... of its question
        self.item_n = np.zeros(len(items), dtype=np.int16)  # the n-gram size of each item
        self.seq_h = np.zeros(0, dtype=np.uint64)  # every window of every item, in item order
        self.seq_pos = np.zeros(0, dtype=np.int32)  # its word position in the item
        self.seq_ptr = np.zeros(len(items) + 1, dtype=np.int64)  # item i: seq[seq_ptr[i]:seq_ptr[i+1]]
        self.seq_inf = np.zeros(0, dtype=bool)  # the window is informative (not a template)
        self.cover = np.zeros(len(items), dtype=np.int32)  # words covered by informative windows
        self.needs_opts = np.zeros(len(items), dtype=bool)  # a very short question: needs its options too
        self.short: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # length -> (sorted hashes, item ids)
        self.stats: dict[str, Any] = {}
        self._pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (gram, item, in question)
        self._bits: np.ndarray | None = None  # gram_bits(), built on first use
        self._sizes: list[int] | None = None  # sizes, once the items are indexed
        self.short_first = np.zeros(0, dtype=np.uint64)  # head_hashes of short questions' first two tokens (build only)

    @property
    def sizes(self) -> list[int]:
        """The n-gram sizes in use (corpus text is windowed at each)."""
        if self._sizes is None:
            self._sizes = sorted({int(n) for n in np.unique(self.item_n) if n > 0}) or [self.cfg.ngram]
        return self._sizes

    # build -------------------------------------------------------------------------------------
    def build_items(self) -> np.ndarray:
        """Index the items, dropping benchmark templates. Returns the candidate gram hashes whose
        corpus document frequency ``apply_corpus_counts`` should be given."""
        c = self.cfg
        gh, gi, gq = [], [], []
        sh_, sp_, si_ = [], [], []  # every window of every item, in order: hash, token position, item
        short_h: dict[int, list[tuple[int, int]]] = {}
        short_first: list[int] = []  # hash of the first two tokens of every short question
        for i, it in enumerate(self.items):
            units = [token_hashes(token_list(t)) for t in it.units()]
            n = c.ngram if len(units[0]) >= c.short_item_tokens else c.short_ngram
            self.item_n[i] = n
            base = 0
            for u, th in enumerate(units):
                if len(th) >= n:
                    w = window_hashes(th, n)
                    sh_.append(w)
                    sp_.append(np.arange(len(w), dtype=np.int32) + base)
                    si_.append(np.full(len(w), i, dtype=np.int32))
                    g = uniq(w)
                    gh.append(g)
                    gi.append(np.full(len(g), i, dtype=np.int32))
                    gq.append(np.full(len(g), u == 0))
                elif u == 0 and len(th) >= c.min_words:  # a short question: matched whole
                    short_h.setdefault(len(th), []).append((int(window_hashes(th, len(th))[0]), i))
                    short_first.append(int(head_hashes(th)[0]))
                elif u == 0 and len(th) >= 3 and len(it.options) >= 2:  # "What does DEA stand for?"
                    short_h.setdefault(len(th), []).append((int(window_hashes(th, len(th))[0]), i))
                    short_first.append(int(head_hashes(th)[0]))
                    self.needs_opts[i] = True  # matched only with two of its options next to it
                base += len(th) + n  # a gap: windows never bridge two units
        h = np.concatenate(gh) if gh else np.zeros(0, dtype=np.uint64)
        o = np.concatenate(gi) if gi else np.zeros(0, dtype=np.int32)
        q = np.concatenate(gq) if gq else np.zeros(0, dtype=bool)
        # one row per (gram, item); in question if any unit that has it is the question
        order = np.lexsort((~q, o, h))
        h, o, q = h[order], o[order], q[order]
        first = np.ones(len(h), dtype=bool)
        first[1:] = (h[1:] != h[:-1]) | (o[1:] != o[:-1])
        h, o, q = h[first], o[first], q[first]
        uh, inv, cnt = np.unique(h, return_inverse=True, return_counts=True)
        template = cnt[inv] >= c.bench_template_items
        self.stats.update(items=len(self.items), grams=int(len(uh)),
                          bench_template_grams=int((cnt >= c.bench_template_items).sum()),
                          items_by_ngram={str(k): int(v) for k, v in zip(*np.unique(self.item_n, return_counts=True))})
        self._pairs = (h[~template], o[~template], q[~template])
        self.seq_h = np.concatenate(sh_) if sh_ else np.zeros(0, dtype=np.uint64)
        self.seq_pos = np.concatenate(sp_) if sp_ else np.zeros(0, dtype=np.int32)
        seq_item = np.concatenate(si_) if si_ else np.zeros(0, dtype=np.int32)
        self.seq_ptr = np.searchsorted(seq_item, np.arange(len(self.items) + 1)).astype(np.int64)
        for n, lst in short_h.items():
            arr = np.array(lst, dtype=np.uint64).reshape(-1, 2)
            order = np.argsort(arr[:, 0], kind="stable")
            self.short[n] = (arr[order, 0], arr[order, 1].astype(np.int32))
        self.stats["short_questions"] = sum(len(v[0]) for v in self.short.values())
        self.short_first = np.unique(np.array(short_first, dtype=np.uint64))
        self._sizes = None
        self._finish()
        return uniq(self._pairs[0])

    def apply_corpus_counts(self, grams: np.ndarray, doc_freq: np.ndarray) -> None:
        """Drop grams found in >= ``corpus_template_docs`` documents, except for items that are
        mostly made of such grams (the item itself is copied around)."""
        assert self._pairs is not None
        h, o, q = self._pairs
        common = grams[doc_freq >= self.cfg.corpus_template_docs]
        if not len(common):
            self.stats.update(corpus_template_grams=0, items_common_in_corpus=0)
            return
        is_common = member(h, common)
        per_item = np.bincount(o, minlength=len(self.items))
        common_item = np.bincount(o[is_common], minlength=len(self.items))
        mostly = common_item >= self.cfg.item_common_share * np.maximum(per_item, 1)
        keep_item = mostly & (per_item > 0)
        drop = is_common & ~keep_item[o]
        self.stats.update(corpus_template_grams=int(len(common)),
                          items_common_in_corpus=int((keep_item & (common_item > 0)).sum()))
        self._pairs = (h[~drop], o[~drop], q[~drop])
        self._finish()

    def _finish(self) -> None:
        assert self._pairs is not None
        h, o, q = self._pairs
        order = np.lexsort((o, h))
        h, o, q = h[order], o[order], q[order]
        self.gram, starts = np.unique(h, return_index=True)
        self._bits = None
        self.ptr = np.append(starts, len(h)).astype(np.int64)
        self.owner, self.qflag = o, q
        self.total = np.bincount(o, minlength=len(self.items)).astype(np.int32)
        self.qtotal = np.bincount(o[q], minlength=len(self.items)).astype(np.int32)
        self.stats["informative_grams"] = int(len(self.gram))
        # which windows of each item are informative, and how many of its words they cover
        seq_item = np.repeat(np.arange(len(self.items), dtype=np.int64), np.diff(self.seq_ptr))
        K = np.uint64(0x9E3779B97F4A7C15)
        with np.errstate(over="ignore"):
            inf_keys = uniq(h ^ (o.astype(np.uint64) * K))
            self.seq_inf = member(self.seq_h ^ (seq_item.astype(np.uint64) * K), inf_keys)
        self.cover = np.array([self._covered(i, self.seq_inf[self.seq_ptr[i]:self.seq_ptr[i + 1]])
                               for i in range(len(self.items))], dtype=np.int32)
        indexed = self.total > 0
        for _, ids in self.short.values():
            indexed[ids] = True
        self.stats["items_indexed"] = int(indexed.sum())

    def _covered(self, i: int, mask: np.ndarray) -> int:
        """Words of item ``i`` covered by its windows selected by ``mask``."""
        pos = self.seq_pos[self.seq_ptr[i]:self.seq_ptr[i + 1]][mask]
        if not len(pos):
            return 0
        n = int(self.item_n[i])
        words = np.zeros(int(pos.max()) + n, dtype=bool)
        words[(pos[:, None] + np.arange(n)[None, :]).ravel()] = True
        return int(words.sum())

    def coverage(self, i: int, matched: np.ndarray) -> float:
        """Share of item ``i``'s informative words covered by the informative windows found."""
        if not self.cover[i]:
            return 0.0
        a, b = self.seq_ptr[i], self.seq_ptr[i + 1]
        mask = self.seq_inf[a:b] & np.isin(self.seq_h[a:b], matched)
        return self._covered(i, mask) / int(self.cover[i])

    # persistence -------------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        out = {"gram": self.gram, "ptr": self.ptr, "owner": self.owner, "qflag": self.qflag, "total": self.total,
               "qtotal": self.qtotal, "item_n": self.item_n, "seq_h": self.seq_h, "seq_pos": self.seq_pos,
               "seq_ptr": self.seq_ptr, "seq_inf": self.seq_inf, "cover": self.cover, "needs_opts": self.needs_opts}
        for n, (h, i) in self.short.items():
            out[f"short{n}_h"], out[f"short{n}_i"] = h, i
        return out

    @classmethod
    def from_arrays(cls, items: list[BenchItem], cfg: MatchConfig, z: Any, stats: dict[str, Any]) -> "ItemIndex":
        ix = cls(items, cfg)
        for k in ("gram", "ptr", "owner", "qflag", "total", "qtotal", "item_n", "seq_h", "seq_pos", "seq_ptr",
                  "seq_inf", "cover", "needs_opts"):
            setattr(ix, k, z[k])
        for k in z.files if hasattr(z, "files") else z:
            if k.startswith("short") and k.endswith("_h"):
                n = int(k[5:-2])
                ix.short[n] = (z[k], z[f"short{n}_i"])
        ix.stats = stats
        return ix

    # matching ----------------------------------------------------------------------------------
    def text_grams(self, text: str) -> np.ndarray:
        """Unique window hashes of ``text`` at every n-gram size in use (for corpus counting)."""
        th = token_hashes(token_list(text))
        return uniq(np.concatenate(window_hashes_multi(th, self.sizes)))

    def find(self, text: str) -> list[Match]:
        """Every item ``text`` contaminates, with the character spans to cut."""
        c = self.cfg
        toks = token_list(text)
        if len(toks) < c.min_words:
            return []
        spans = _LazySpans(text)  # character spans are needed only where something matched
        th = token_hashes(toks)
        out: list[Match] = []
        wins = dict(zip(self.sizes, window_hashes_multi(th, self.sizes)))
        g = np.concatenate([wins[n] for n in self.sizes])
        gpos = np.concatenate([np.arange(len(wins[n])) for n in self.sizes])
        if len(g) and len(self.gram):
            maybe = np.flatnonzero(self.gram_bits()[g & BITS_MASK])  # cheap pre-test, then exact
            pos = np.minimum(np.searchsorted(self.gram, g[maybe]), len(self.gram) - 1)
            found = self.gram[pos] == g[maybe]
            hit, gidx = maybe[found], pos[found]
            if len(hit):
                counts = self.ptr[gidx + 1] - self.ptr[gidx]
                rep = np.repeat(hit, counts)
                starts = np.repeat(self.ptr[gidx], counts)
                offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
                rows = starts + offs
                items, inq = self.owner[rows], self.qflag[rows]
                grams_of, tokpos = g[rep], gpos[rep]
                for it in uniq(items):
                    sel = items == it
                    n = int(self.item_n[it])
                    p = np.sort(tokpos[sel])
                    found_grams = uniq(grams_of[sel])
                    share = len(found_grams) / max(1, int(self.total[it]))
                    qshare = (len(uniq(grams_of[sel & inq])) / int(self.qtotal[it])) if self.qtotal[it] else 0.0
                    run = _longest_run(p)
                    if len(found_grams) < min(c.min_hits, int(self.total[it])):
                        continue  # one or two n-grams are not evidence of a whole item
                    if share >= c.min_share:
                        why = f"share {share:.2f} of {int(self.total[it])} informative {n}-grams"
                    elif qshare >= c.min_share:
                        why = f"question share {qshare:.2f} of {int(self.qtotal[it])} informative {n}-grams"
                        p = np.sort(tokpos[sel & inq])
                    elif len(p) >= 2 and (cov := self.coverage(int(it), found_grams)) >= c.min_coverage:
                        why = f"covers {cov:.2f} of the item's {int(self.cover[it])} informative words (edited copy)"
                    elif run >= c.min_run and self.total[it] >= 3 * c.min_run:  # a long quote of a long item
                        why = f"verbatim run of {run} informative {n}-grams"
                        p = _run_positions(p, c.min_run)
                    else:
                        continue
                    p = self._grow(int(it), p, wins[n], n)
                    out.append(Match(int(it), why, self._spans(p, n, spans, text), round(max(share, qshare), 3)))
        for n, (sh, si) in self.short.items():
            w = window_hashes(th, n)
            if not len(w):
                continue
            pos = np.minimum(np.searchsorted(sh, w), len(sh) - 1)
            for k in np.nonzero(sh[pos] == w)[0]:
                j = pos[k]
                while j < len(sh) and sh[j] == w[k]:
                    it = int(si[j])
                    j += 1
                    if any(m.item == it for m in out):
                        continue
                    m = Match(it, f"exact question ({n} words)", self._spans(np.array([k]), n, spans, text))
                    if self.needs_opts[it]:
                        found = {u for u, _ in self._unit_hits(m, toks, spans, text) if u > 0}
                        if len(found) < 2:
                            continue
                        m.why = f"exact question ({n} words) with {len(found)} of its options"
                    out.append(m)
        for m in out:
            m.spans = _merge(m.spans + self._unit_spans(m, toks, spans, text))
        return out

    def gram_bits(self) -> np.ndarray:
        """A one-hash Bloom bitmap of ``gram`` (low bits of each hash): most corpus windows miss
        it, so the binary search runs only on the few that may be in the index."""
        if self._bits is None:
            self._bits = gram_bitmap(self.gram)
        return self._bits

    def _grow(self, i: int, p: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
        """The matched window positions ``p`` grown over every adjacent window of the item,
        templates included: the whole occurrence is cut, not just its informative middle."""
        full = self.seq_h[self.seq_ptr[i]:self.seq_ptr[i + 1]]
        if not len(full) or not len(p):
            return p
        allp = np.union1d(np.nonzero(np.isin(w, full))[0], p)
        cluster = np.concatenate([[0], np.cumsum(np.diff(allp) > n)])
        keep = np.isin(cluster, cluster[np.searchsorted(allp, p)])
        return allp[keep]

    def _spans(self, positions: np.ndarray, n: int, spans: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
        """Character spans covering the windows at ``positions`` (gaps under ``n`` words bridged,
        so a lightly edited copy is cut whole), widened to whole lines when only bullets,
        option letters or punctuation would remain of a line."""
        out: list[tuple[int, int]] = []
        lo = hi = -1
        for p in positions.tolist():
            if lo < 0:
                lo, hi = p, p + n - 1
            elif p <= hi + n:
                hi = max(hi, p + n - 1)
            else:
                out.append((lo, hi))
                lo, hi = p, p + n - 1
        if lo >= 0:
            out.append((lo, hi))
        return [_widen(text, spans[a][0], spans[min(b, len(spans) - 1)][1]) for a, b in out]

    def _unit_spans(self, m: Match, toks: list[str], spans: list[tuple[int, int]], text: str
                    ) -> list[tuple[int, int]]:
        return [s for _, s in self._unit_hits(m, toks, spans, text)]

    def _unit_hits(self, m: Match, toks: list[str], spans: list[tuple[int, int]], text: str
                   ) -> list[tuple[int, tuple[int, int]]]:
        """The rest of a matched item where it stands verbatim within ``option_window`` words of
        the match: a multiple-choice item's options (often too short to index), or its question
        when the match came from long options."""
        it = self.items[m.item]
        if not m.spans or not (it.options or it.extra):
            return []
        first = _token_at(spans, m.spans[0][0])
        last = _token_at(spans, m.spans[-1][1] - 1)
        w = self.cfg.option_window
        out = []
        for u, opt in enumerate(it.units()):
            ot = token_list(opt)
            lo, hi = max(0, first - w - len(ot)), min(len(toks), last + w + len(ot))
            if not ot:
                continue
            head = ot[0] if ot else None
            for s in range(lo, hi - len(ot) + 1):
                if toks[s] == head and toks[s:s + len(ot)] == ot:
                    out.append((u, _widen(text, spans[s][0], spans[s + len(ot) - 1][1])))
                    break
        return out


class _LazySpans:
    """The character spans of :func:`tokens`, computed on first use."""

    def __init__(self, text: str):
        self.text = text
        self._spans: list[tuple[int, int]] | None = None

    @property
    def spans(self) -> list[tuple[int, int]]:
        if self._spans is None:
            self._spans = tokens(self.text)[1]
        return self._spans

    def __getitem__(self, i: int) -> tuple[int, int]:
        return self.spans[i]

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self):
        return iter(self.spans)


def document_cves(doc_id: str, title: str, text: str, metadata: dict[str, Any]) -> set[str]:
    """The CVE ids a document is *about*: its record id, id, title or aliases; when those name
    none, the CVE ids of its first line (a heading such as ``# CVE-2024-3905: ...``)."""
    named = " ".join([str(metadata.get("record_id", "")), doc_id, title or "",
                      " ".join(map(str, metadata.get("aliases") or []))])
    ids = {m.upper() for m in CVE_RE.findall(named)}
    if ids:
        return ids
    first = text.lstrip()[:300].split("\n", 1)[0]
    return {m.upper() for m in CVE_RE.findall(first)}


def entity_guarded(item: BenchItem, about: set[str], m: Match) -> bool:
    """A CVE record is not a copy of a benchmark item about *another* CVE just because their
    descriptions follow one template (two versions of one plugin, one vendor's boilerplate) —
    unless the item's text is there in full (share 1.0: copied under a new id)."""
    return bool(item.cves and about and not (about & set(item.cves)) and m.share < 1.0)


def _token_at(spans: list[tuple[int, int]], char: int) -> int:
    import bisect

    return max(0, bisect.bisect_right([s for s, _ in spans], char) - 1)


def _longest_run(p: np.ndarray) -> int:
    if len(p) == 0:
        return 0
    u = uniq(p)
    breaks = np.nonzero(np.diff(u) != 1)[0]
    edges = np.concatenate([[-1], breaks, [len(u) - 1]])
    return int(np.diff(edges).max())


def _run_positions(p: np.ndarray, min_run: int) -> np.ndarray:
    """Only the positions that belong to runs of at least ``min_run`` consecutive windows."""
    u = uniq(p)
    out, start = [], 0
    for k in range(1, len(u) + 1):
        if k == len(u) or u[k] != u[k - 1] + 1:
            if k - start >= min_run:
                out.extend(u[start:k].tolist())
            start = k
    return np.array(out, dtype=np.int64)


def _widen(text: str, a: int, b: int) -> tuple[int, int]:
    ls = text.rfind("\n", 0, a) + 1
    le = text.find("\n", b)
    le = len(text) if le < 0 else le
    if _LINE_REST.match(text[ls:a] + " " + text[b:le]):
        return ls, min(len(text), le + 1)
    return a, b


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def cut_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` without ``spans`` (merged), runs of blank lines collapsed."""
    parts, last = [], 0
    for a, b in _merge(spans):
        parts.append(text[last:a])
        last = b
    parts.append(text[last:])
    return re.sub(r"\n{3,}", "\n\n", "".join(parts)).strip() + "\n"
