"""The decontamination fast paths give what the plain code gives (issue #14 item 6: speed only).

* tokens without spans, cached token hashes, sort-based unique / membership, windows hashed at
  chosen starts and the short-question pre-test agree with the straightforward versions;
* the step's apply pass, which runs the item matcher only on the documents its fit found to hold
  an informative n-gram or a short question, keeps, cuts and drops exactly what matching every
  document does.
"""

from __future__ import annotations

import random

import numpy as np
import xxhash

from secfoundry.corpus.prepare import contamination as C
from secfoundry.corpus.prepare.decontaminate import Decontaminate, DecontaminateConfig
from secfoundry.core.documents import Document

from .helpers import fit_and_run
from .test_contamination import MCQ_OPTS, MCQ_Q, vuldb
from .test_decontaminate_step import bench_copy, corpus

TEXTS = ["Plain ASCII text, with CVE-2024-1234 and foo_bar.baz() calls.", "Ünïcödé Straße ﬁle ＡＢＣ mixed CASE",
         "中文安全问题 SQL 注入 attack", "", "   ", "tab\tand\nnew lines 123 4.5.6", "İstanbul KELVIN \u212a sign"]


def test_token_list_and_hashes_match_the_spanned_tokens():
    rng = random.Random(3)
    alphabet = "abcXYZ 019_-.\n\tßİ\u212a中"
    texts = TEXTS + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(300)]
    for t in texts:
        toks = C.tokens(t)[0]
        assert C.token_list(t) == toks
        want = np.array([xxhash.xxh64_intdigest(x.encode("utf-8", "surrogatepass")) for x in toks], dtype=np.uint64)
        assert np.array_equal(C.token_hashes(toks), want)
        assert np.array_equal(C.token_hashes(toks), want)  # second call: from the cache


def test_array_helpers_match_numpy():
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 100, 1000):
        a = rng.integers(0, 50, size=n).astype(np.uint64)
        s = np.unique(rng.integers(0, 50, size=20).astype(np.uint64))
        assert np.array_equal(C.uniq(a), np.unique(a))
        assert np.array_equal(C.member(a, s), np.isin(a, s))
        th = rng.integers(0, 2**63, size=n, dtype=np.uint64)
        multi = C.window_hashes_multi(th, [8, 13, 3])
        assert all(np.array_equal(m, C.window_hashes(th, w)) for m, w in zip(multi, [8, 13, 3]))
        for w in (3, 8, 13):
            full = C.window_hashes(th, w)
            starts = np.arange(len(full))[::3]
            assert np.array_equal(C.window_hashes_at(th, w, starts), full[starts])


def test_short_question_pretest_matches_hashing_every_window():
    rng = random.Random(5)
    words = [f"w{i}" for i in range(30)]
    questions = [[rng.choice(words) for _ in range(rng.randint(3, 12))] for _ in range(40)]
    short: dict[int, list[int]] = {}
    for q in questions:
        short.setdefault(len(q), []).append(int(C.window_hashes(C.token_hashes(q), len(q))[0]))
    short_arr = {n: np.unique(np.array(v, dtype=np.uint64)) for n, v in short.items()}
    first = np.unique(np.array([C.head_hashes(C.token_hashes(q[:2]))[0] for q in questions], dtype=np.uint64))
    for _ in range(300):
        doc = [rng.choice(words) for _ in range(rng.randint(0, 40))]
        if rng.random() < 0.3:
            q = rng.choice(questions)
            k = rng.randint(0, len(doc))
            doc[k:k] = q
        th = C.token_hashes(doc)
        brute = any(len(C.in_sorted(C.window_hashes(th, n), sh)) for n, sh in short_arr.items())
        assert C.has_short_question(th, short_arr, first) == brute


def _fingerprint(kept, dropped):
    return ({d.id: (d.text, str(d.metadata.get("decontaminated"))) for d in kept},
            {d.doc.id: d.reason for d in dropped})


def test_apply_on_pretested_documents_equals_matching_every_document(tmp_path):
    data = bench_copy(tmp_path)
    docs = corpus() + [
        Document(id=f"filler:{i}", source="web", text=f"Unrelated filler page number {i} about patching routers "
                                                       "and rotating credentials in small offices. " * 3)
        for i in range(8)] + [
        Document(id="quote", source="web", text="Exam prep notes.\n\n" + MCQ_Q + "\n" + "\n".join(MCQ_OPTS) + "\n\n"
                 + "Further reading on persistence follows in the next chapter of this long guide. " * 3),
        Document(id="copy", source="web", text="Seen on a forum:\n\n" + vuldb(3) + "\n\nEnd of post, thanks for reading it all."),
    ]
    cfg = dict(benchmarks=["ctibench-rcm", "ctibench-mcq"], data_dir=str(data))
    fast = Decontaminate(DecontaminateConfig(**cfg))
    kept, dropped = fit_and_run(fast, [Document.from_row(d.to_row()) for d in docs], tmp_path / "a")
    assert fast.may_match is not None and "filler:0" not in fast.may_match and "copy" in fast.may_match
    plain = Decontaminate(DecontaminateConfig(**cfg))
    plain.fit = lambda ctx, _f=plain.fit: (_f(ctx), (ctx.state_dir / "may_match.json").unlink())  # match everything
    kept2, dropped2 = fit_and_run(plain, [Document.from_row(d.to_row()) for d in docs], tmp_path / "b")
    assert plain.may_match is None
    assert _fingerprint(kept, dropped) == _fingerprint(kept2, dropped2)
    assert {d.doc.id for d in dropped2} and any(d.metadata.get("decontaminated") for d in kept2)  # the test has teeth
