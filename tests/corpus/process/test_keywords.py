"""Keyword prefilter: case rules for acronyms, word boundaries, phrases, ids, density."""

from __future__ import annotations

import pytest

from secfoundry.corpus.process.keywords import KeywordConfig, KeywordList, KeywordStep, default_keywords, score_text
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError


def test_list_size_and_format():
    kw = default_keywords()
    assert kw.size >= 500


def test_case_and_boundaries():
    assert "RAT" in score_text("The RAT beacons home.").hits
    assert "RAT" not in score_text("The rat ran.").hits
    assert not score_text("A pirate and a separate operator.").hits.get("RAT")
    assert "cross-site scripting" in score_text("Cross site scripting in the form").hits
    assert "cross-site scripting" in score_text("A cross-site-scripting issue").hits
    # the longest phrase wins over its prefix
    hits = score_text("a remote code execution bug").hits
    assert "remote code execution" in hits and "execution" not in hits


def test_identifier_patterns():
    s = score_text("See CVE-2021-44228 and GHSA-jfh8-c2jp-5v3q.")
    assert s.id_hit and s.hits


def test_prefilter_decisions():
    step = KeywordStep(KeywordConfig(defer_below_words=0))
    sec = Document(id="1", source="crawl", text=(
        "The ransomware operators used phishing emails for initial access, then moved laterally "
        "with PsExec and dumped credentials with Mimikatz before exfiltration."))
    gen = Document(id="2", source="crawl", text=(
        "The recipe needs two cups of flour, a pinch of salt and three eggs. Bake for forty minutes "
        "at 180 degrees until golden brown and let it cool before serving."))
    assert step(sec).doc is not None
    d = step(gen)
    assert d.doc is None and d.reason.startswith("keywords:")
    # high-value connector documents always pass
    assert step(Document(id="3", source="cwe", text="Improper handling of a list.")).doc is not None
    assert KeywordStep(KeywordConfig(trust_high_value=False, defer_below_words=0))(
        Document(id="4", source="cwe", text="Nothing here at all.")).doc is None


def test_custom_list_and_errors(tmp_path):
    p = tmp_path / "kw.txt"
    p.write_text("# c\nfoo bar\t2\nBAZ\nre:\\bX-\\d+\\b\t3\n")
    kw = KeywordList.load(p)
    s = score_text("foo-bar BAZ baz X-12", kw)
    assert s.hits == {"foo bar": 1, "BAZ": 1, "\\bX-\\d+\\b": 1} and s.id_hit
    bad = tmp_path / "bad.txt"
    bad.write_text("ok\nterm\tnot-a-number\n")
    with pytest.raises(InputError, match="row 2"):
        KeywordList.load(bad)


def test_short_documents_deferred_to_the_classifier():
    step = KeywordStep()
    short = step(Document(id="s", source="crawl", text="Milan can encode files about the targeted system."))
    assert short.doc is not None and short.doc.metadata["keywords"]["deferred"]
