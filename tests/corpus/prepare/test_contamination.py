"""Item-level decontamination on tiny fixtures: templates never cut, copies always do."""

from __future__ import annotations

import json

import numpy as np

from secfoundry.corpus.prepare import contamination as C
from secfoundry.corpus.prepare.dates import document_date, iso_date

VULDB = ("A vulnerability has been found in {vendor} {product} {ver} and classified as critical. Affected by this "
         "vulnerability is the function {fn} of the file {file}. The manipulation of the argument {arg} leads to "
         "stack-based buffer overflow. It is possible to initiate the attack remotely. The exploit has been "
         "disclosed to the public and may be used. The identifier VDB-{vdb} was assigned to this vulnerability.")


def vuldb(i: int, **kw) -> str:
    base = dict(vendor="Tenda", product=f"AC{500 + i}", ver=f"2.0.{i}.9", fn=f"formFunc{i}x", file=f"/goform/page{i}",
                arg=f"arg{i}", vdb=259000 + i)
    base.update(kw)
    return VULDB.format(**base)


MCQ_Q = ("Which adversary technique abuses the Windows Management Instrumentation event subscription mechanism "
         "to execute a payload whenever a chosen system event such as a user logon occurs on the host?")
MCQ_OPTS = ["Scheduled Task/Job", "WMI Event Subscription", "Registry Run Keys", "Accessibility Features"]
REPORT = " ".join(f"word{i} alpha{i % 7} beta{i % 11}" for i in range(120))  # a long threat-report item


def items() -> list[C.BenchItem]:
    out = [C.BenchItem(f"ctibench-rcm:{i}", [f"ctibench-rcm:{i}"], vuldb(i), cves=[f"CVE-2024-{1000 + i}"])
           for i in range(6)]
    out.append(C.BenchItem("ctibench-mcq:7", ["ctibench-mcq:7"], MCQ_Q, MCQ_OPTS))
    out.append(C.BenchItem("cybermetric-80:3", ["cybermetric-80:3", "cybermetric-500:3"],
                           "Which property makes a biometric system trustworthy overall?", ["A", "B", "C", "D"]))
    out.append(C.BenchItem("ctibench-taa:1", ["ctibench-taa:1"], REPORT))
    out.append(C.BenchItem("secbench-mcq:9", ["secbench-mcq:9"], "以下哪种措施是企业为了遵守数据保护法规，通常会实施的？",
                           ["定期进行网络渗透测试", "建立数据最小化原则，仅收集必要的个人数据"]))
    return out


def index() -> C.ItemIndex:
    ix = C.ItemIndex(items())
    ix.build_items()
    return ix


def keys(ix: C.ItemIndex, text: str) -> set[str]:
    return {ix.items[m.item].key for m in ix.find(text)}


def test_template_sentences_of_other_items_do_not_match():
    ix = index()
    assert ix.stats["bench_template_grams"] > 0
    # An ordinary CVE in the same VulDB template, different product/function/argument: not an item.
    other = "# CVE-2024-3905: Tenda AC500\n\n" + vuldb(40, product="AC500", ver="2.0.1.9(1307)", fn="fromAddressNat",
                                                          file="/goform/addressNat", arg="page")
    assert keys(ix, other) == set()


def test_exact_and_reformatted_copies_are_cut_with_evidence():
    ix = index()
    exact = "Intro about firewalls and segmentation.\n\n" + vuldb(2) + "\n\nOutro about patching cadence."
    ms = ix.find(exact)
    assert [ix.items[m.item].key for m in ms] == ["ctibench-rcm:2"] and ms[0].share == 1.0
    out = C.cut_spans(exact, ms[0].spans)
    assert "Intro about firewalls" in out and "Outro about patching" in out and "formFunc2x" not in out
    # reformatted MCQ: upper case, markdown, a line break inside, options as "A) ..." lines
    q = MCQ_Q.upper().replace(" EVENT SUBSCRIPTION ", " event\nsubscription ")
    doc = ("Study notes on persistence.\n\n**Q1.** " + q + "\n"
           + "\n".join(f"{l}) {o}" for l, o in zip("ABCD", MCQ_OPTS)) + "\n\nAnswer discussion elsewhere.")
    ms = ix.find(doc)
    assert [ix.items[m.item].key for m in ms] == ["ctibench-mcq:7"]
    out = C.cut_spans(doc, ms[0].spans)
    assert "WMI Event Subscription" not in out and "Registry Run Keys" not in out and "Q1" not in out
    assert "Study notes on persistence." in out and "Answer discussion elsewhere." in out


def test_one_edited_word_does_not_hide_a_short_item():
    ix = index()
    assert int(ix.item_n[6]) == 8  # the 31-word MCQ question is indexed with 8-grams
    edited = MCQ_Q.replace("whenever a chosen", "whenever some chosen")
    ms = ix.find("Notes.\n\n" + edited + "\n\nMore notes about unrelated matters here.")
    assert [ix.items[m.item].key for m in ms] == ["ctibench-mcq:7"]
    out = C.cut_spans("Notes.\n\n" + edited + "\n\nMore notes.", ms[0].spans)
    assert "Windows Management" not in out and "chosen" not in out and out.startswith("Notes.")


def test_short_question_long_quote_and_cjk():
    ix = index()
    t = "FAQ\n\nWhich property makes a biometric system trustworthy overall?\n\nMore text follows here."
    ms = ix.find(t)
    assert [(ix.items[m.item].key, m.why) for m in ms] == [("cybermetric-80:3", "share 1.00 of 1 informative 8-grams")]
    # a 40-word verbatim quote of a 360-word report: under the share, over the run length
    words = REPORT.split()
    quote = " ".join(words[30:72])
    ms = ix.find("Blog post.\n\n" + quote + "\n\nOur analysis differs.")
    assert [ix.items[m.item].key for m in ms] == ["ctibench-taa:1"] and ms[0].why.startswith("verbatim run")
    # 10 words only: not enough to claim the item
    assert keys(ix, "Blog. " + " ".join(words[30:40]) + " end.") == set()
    zh = "前言。\n\n以下哪种措施是企业为了遵守数据保护法规，通常会实施的？\n\n结论。"
    assert keys(ix, zh) == {"secbench-mcq:9"}


def test_corpus_common_grams_are_templates_unless_the_item_is_copied():
    ix = C.ItemIndex(items())
    cand = ix.build_items()
    # A phrase of item 0 is in 50 corpus documents (boilerplate): it stops counting for item 0.
    g0 = ix.text_grams(vuldb(0))
    freq = np.zeros(len(cand), dtype=np.int64)
    common = g0[:5]
    freq[np.searchsorted(cand, common[np.isin(common, cand)])] = 50
    # The whole MCQ item is in 50 documents: it is copied around, its grams stay.
    gm = ix.text_grams(MCQ_Q)
    freq[np.searchsorted(cand, gm[np.isin(gm, cand)])] = 50
    before = int(ix.total[0])
    ix.apply_corpus_counts(cand, freq)
    assert int(ix.total[0]) < before
    assert ix.stats["items_common_in_corpus"] == 1
    assert keys(ix, "x " + MCQ_Q + " y") == {"ctibench-mcq:7"}


def test_dates_per_source():
    assert iso_date("2024/06/01") == "2024-06-01"
    assert iso_date("Tue, 15 Nov 1994 12:45:26 GMT") == "1994-11-15"
    assert iso_date("not a date") is None
    assert document_date("kev", {"date_added": "2024-07-01"}) == ("2024-07-01", "date_added")
    att = {"created": "2017-05-31T21:30:19.735Z", "modified": "2025-04-15T19:58:00.000Z"}
    assert document_date("attack", att) == ("2017-05-31", "created")
    assert document_date("attack", att, basis="modified") == ("2025-04-15", "modified")
    assert document_date("osv", {"published": "2021-01-02", "modified": "2023-03-04"}, "modified")[0] == "2023-03-04"
    web = {"collect": "warc", "warc_date": "2025-01-01T00:00:00Z", "last_modified": "2019-02-03"}
    assert document_date("crawl", web) == ("2019-02-03", "last_modified")
    assert document_date("crawl", {"collect": "warc", "warc_date": "2025-01-01T00:00:00Z"})[1] == "warc_date"
    assert document_date("cwe", {}) == (None, "")


def test_items_round_trip_through_arrays(tmp_path):
    ix = index()
    np.savez(tmp_path / "ix.npz", **ix.arrays())
    (tmp_path / "items.json").write_text(json.dumps([it.to_dict() for it in ix.items]))
    again_items = [C.BenchItem(**d) for d in json.loads((tmp_path / "items.json").read_text())]
    with np.load(tmp_path / "ix.npz") as z:
        ix2 = C.ItemIndex.from_arrays(again_items, ix.cfg, {k: z[k] for k in z.files}, ix.stats)
    t = "x\n\nWhich property makes a biometric system trustworthy overall?\n\n" + vuldb(3)
    assert keys(ix2, t) == keys(ix, t) == {"cybermetric-80:3", "ctibench-rcm:3"}


def test_edited_long_item_matches_by_coverage_and_boilerplate_runs_do_not():
    ix = index()
    words = REPORT.split(" ")
    for k in range(10, len(words), 25):  # one word in 25 edited: 13-gram share falls under 0.5
        words[k] = "edited"
    ms = ix.find("Intro.\n\n" + " ".join(words) + "\n\nOutro.")
    assert [ix.items[m.item].key for m in ms] == ["ctibench-taa:1"] and "covers" in ms[0].why
    # a 33-word run of a short item (VulDB boilerplate + product) is not a quote of it
    short = C.BenchItem("ctibench-rcm:50", ["ctibench-rcm:50"], vuldb(50))
    ix2 = C.ItemIndex([short])
    ix2.build_items()
    half = " ".join(vuldb(50).split(" ")[:33])
    assert all("verbatim run" not in m.why for m in ix2.find(half + " and then something else entirely"))


def test_question_goes_with_a_match_on_long_options():
    it = C.BenchItem("ctibench-mcq:1922", ["ctibench-mcq:1922"], "CWE-45 involves which primary risk?",
                     ["Disclosure of sensitive information due to stored cross-site scripting (XSS).",
                      "Unauthorized access through poorly validated path inputs and other traversal tricks.",
                      "Denial of Service (DoS) attacks against web services from many distributed hosts.",
                      "Escalation of privileges by injecting SQL code into the login form fields."])
    ix = C.ItemIndex([it])
    ix.build_items()
    text = "Intro line.\n\nCWE-45 involves which primary risk?\n" + "\n".join(
        f"{l}) {o}" for l, o in zip("ABCD", it.options)) + "\n\nOutro line."
    out = C.cut_spans(text, ix.find(text)[0].spans)
    assert "CWE-45" not in out and "SQL" not in out and out.startswith("Intro line.")


def test_entity_guard_keeps_another_cves_record_but_not_a_full_copy():
    ix = index()
    m = C.Match(0, "share 0.88", [(0, 10)], 0.88)
    it = ix.items[0]  # about CVE-2024-1000
    assert C.entity_guarded(it, {"CVE-2024-3905"}, m)
    assert not C.entity_guarded(it, {"CVE-2024-1000"}, m)
    assert not C.entity_guarded(it, set(), m)  # a blog post is not a CVE record
    assert not C.entity_guarded(it, {"CVE-2099-1"}, C.Match(0, "share 1.00", [(0, 10)], 1.0))
    assert C.document_cves("nvd:CVE-2024-3905", "", "text", {}) == {"CVE-2024-3905"}


def test_very_short_question_needs_its_options_and_template_edges_go_with_the_item():
    it = C.BenchItem("secbench-mcq:2140", ["secbench-mcq:2140"], "What does DEA stand for?",
                     ["Data Encoding Algorithm", "Data Encryption Algorithm", "Digital Encoding Application", "None"])
    ix = C.ItemIndex([it])
    ix.build_items()
    quiz = "Quiz.\n\nWhat does DEA stand for?\nA. Data Encoding Algorithm\nB. Data Encryption Algorithm\n\nEnd of quiz."
    ms = ix.find(quiz)
    assert len(ms) == 1 and "with 2 of its options" in ms[0].why
    out = C.cut_spans(quiz, ms[0].spans)
    assert "DEA" not in out and "Encoding" not in out and out.startswith("Quiz.")
    assert ix.find("Acronyms. What does DEA stand for? The Drug Enforcement Administration, in the US.") == []
    # templates at the edges of a matched item are cut with it (nothing of the item is left)
    ix2 = index()
    doc = "Host text before.\n\n" + vuldb(3) + "\n\nHost text after."
    out = C.cut_spans(doc, ix2.find(doc)[0].spans)
    assert "exploit has been disclosed" not in out and "initiate the attack" not in out


def test_a_record_with_only_a_last_change_date_is_dated_by_it():
    assert document_date("capec", {"modified": "2020-12-17T00:00:00Z"}) == ("2020-12-17", "modified")
    assert document_date("osv", {"published": "2021-01-02", "modified": "2023-03-04"}) == ("2021-01-02", "published")


def test_download_only_benchmarks_are_covered_when_on_disk(tmp_path):
    d = tmp_path / "bench" / "cybermetric"
    d.mkdir(parents=True)
    q = {"question": "Which control best limits lateral movement between flat network segments in a data centre?",
         "answers": {"A": "Micro-segmentation", "B": "Antivirus", "C": "Backups", "D": "Password rotation"},
         "solution": "A"}
    (d / "CyberMetric-2000-v1.json").write_text(json.dumps({"questions": [q]}))
    items, info = C.load_benchmark_items(["cybermetric-2000", "cybermetric-10000"], str(tmp_path / "bench"))
    assert info["loaded"] == {"cybermetric-2000": 1}
    assert "not on disk" in info["missing"]["cybermetric-10000"]
    assert items[0].key == "cybermetric-2000:0" and items[0].options[0] == "Micro-segmentation"
