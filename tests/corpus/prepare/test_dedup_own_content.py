"""Paragraph dedup trims what is repeated and keeps what a document has of its own (issue #14 item 5).

* OSV alias twins (PYSEC records of one CVE for ``tensorflow``/``tensorflow-cpu``, and their GHSA
  record) share the description: the later twins lose it, but keep their id heading, aliases,
  affected packages and references, and are not dropped;
* a document is dropped whole only when nothing of its own is left;
* a page repeating its own paragraphs keeps one copy of each and is not "emptied".
"""

from __future__ import annotations

import pytest

from secfoundry.corpus.prepare.dedup import Dedup, DedupConfig
from secfoundry.corpus.prepare.dedup_metrics import entities_lost
from secfoundry.corpus.prepare.dedup_paragraph import ParagraphDedup, ParagraphDedupConfig, field_paragraph
from secfoundry.core.documents import Document

from .helpers import fit_and_run
from .test_dedup import prose

DESC = ("TensorFlow is an end-to-end open source platform for machine learning. Calling `tf.raw_ops.ImmutableConst` "
        "with a `dtype` of `tf.resource` or `tf.variant` results in a segfault in the implementation as code assumes "
        "that the tensor contents are pure scalars. We have patched the issue in 4f663d4b and will release "
        "TensorFlow 2.5.0 containing the patch. TensorFlow nightly packages after this commit will also have the "
        "issue resolved. If using `tf.raw_ops.ImmutableConst` in code, you can prevent the segfault by inserting "
        "a filter for the `dtype` argument.")
REFS = ("## References\n\n- https://github.com/tensorflow/tensorflow/security/advisories/GHSA-g4h2-gqm3-c9wq\n"
        "- https://github.com/tensorflow/tensorflow/commit/4f663d4b8f0bec1b48da6fa091a7d29609980fa4\n")


def osv(rec: str, pkg: str, versions: str, aliases: str = "CVE-2021-29539, GHSA-g4h2-gqm3-c9wq") -> Document:
    text = (f"# {rec}: {rec} in {pkg}\n\n- **Aliases**: {aliases}\n- **Published**: 2021-05-14T20:15:00Z\n\n"
            f"{DESC}\n\n## Affected packages\n\n- PyPI `{pkg}`: {versions}\n\n{REFS}")
    return Document(id=f"osv:{rec}", text=text, source="osv", title=f"{rec}: {rec} in {pkg}")


VERS = ("introduced 0; fixed 4f663d4b8f0bec1b48da6fa091a7d29609980fa4; introduced 0; fixed 2.2.0rc0; introduced 2.2.0; "
        "fixed 2.3.0rc0; introduced 2.3.0; fixed 2.3.4; introduced 2.4.0; fixed 2.4.3")


def twins() -> list[Document]:
    return [osv("PYSEC-2021-180", "tensorflow", VERS), osv("PYSEC-2021-467", "tensorflow-cpu", VERS),
            osv("PYSEC-2021-565", "tensorflow-gpu", VERS),
            osv("GHSA-g4h2-gqm3-c9wq", "tensorflow", VERS, aliases="CVE-2021-29539, PYSEC-2021-180")]


@pytest.mark.parametrize("step", ["paragraph", "one-phase"])
def test_alias_twins_keep_their_own_remainder(tmp_path, step):
    docs = twins()
    # near=False: the one-phase step's MinHash would merge twins whose text is near-identical (a
    # separate decision, reported as dedup:near); here the paragraph decision is under test
    s = ParagraphDedup() if step == "paragraph" else Dedup(DedupConfig(near=False))
    kept, dropped = fit_and_run(s, docs, tmp_path, parts=2)
    assert not dropped, [(d.doc.id, d.reason) for d in dropped]
    by_id = {d.id: d for d in kept}
    first = by_id["osv:PYSEC-2021-180"]
    assert first.text.strip() == docs[0].text.strip()  # the first one keeps everything
    for d in docs[1:]:
        k = by_id[d.id]
        assert DESC not in k.text  # the shared description is trimmed ...
        assert k.metadata["paragraphs_removed"] == 1
        rec = d.id.split(":", 1)[1]
        assert f"# {rec}:" in k.text and "**Aliases**" in k.text  # ... its own id and aliases stay
        assert "## Affected packages" in k.text and VERS in k.text and "GHSA-g4h2-gqm3-c9wq\n" in k.text
    loss = entities_lost(docs, kept)
    assert loss.n_lost == 0 and loss.through_twin == [] and loss.emptied == 0


def test_without_own_fields_the_twins_are_dropped_whole(tmp_path):
    """The old behaviour, kept behind a switch: field lists deduplicated across twins leave the
    later twins nothing of their own, so they go whole; their entity is kept only through the first."""
    docs = twins()
    kept, dropped = fit_and_run(ParagraphDedup(ParagraphDedupConfig(own_fields=False)), docs, tmp_path)
    gone = {"osv:PYSEC-2021-467", "osv:PYSEC-2021-565"}  # only their 9-word id heading was new
    assert {d.doc.id for d in dropped} == gone and all(d.reason == "dedup:paragraphs" for d in dropped)
    loss = entities_lost(docs, kept)  # the GHSA record's alias line differs: it keeps that and its heading
    assert loss.n_lost == 0 and {t[0] for t in loss.through_twin} == gone


def test_dropped_whole_only_when_nothing_of_its_own_is_left(tmp_path):
    shared, other = prose(21, 120), prose(22, 120)
    docs = [Document(id="a", text=f"# Original\n\n{shared}\n\n{other}\n", source="web"),
            # a copy of a's paragraphs under a shared stub heading: nothing of its own
            Document(id="copy", text=f"## Overview\n\n{shared}\n\n{other}\n", source="web"),
            # the same repeats plus one short line of its own (a detection id and the technique it detects)
            Document(id="det", text=f"# DET0815: Detection of IP Addresses\n\n- Detects T1590.005 IP Addresses\n\n"
                                    f"{shared}\n", source="web"),
            Document(id="b", text=f"## Overview\n\n{prose(23, 40)}\n", source="web")]
    kept, dropped = fit_and_run(ParagraphDedup(), docs, tmp_path, parts=1)
    assert [(d.doc.id, d.reason) for d in dropped] == [("copy", "dedup:paragraphs")]
    det = {d.id: d for d in kept}["det"]
    assert shared not in det.text and "DET0815" in det.text and "T1590.005" in det.text


def test_page_repeating_its_own_paragraphs(tmp_path):
    """A CTID mapping page whose upstream text repeats the capability description before every
    mapping: one copy of each paragraph stays, the mapping lines and table stay, not emptied."""
    desc = ("The anti-spoofing technology in Microsoft O365 specifically examines forgery of the From header in the "
            "message body, because that header value is the message sender that's shown in email clients.")
    maps = [f"Microsoft O365's anti-spoofing technology protects from {t} attacks due to its mechanisms, which "
            f"provide email authentication by DKIM and anti-phishing policies." for t in
            ("Phishing", "Spearphishing Link", "Spearphishing Attachment", "Internal Spearphishing")]
    body = "\n\n".join(f"{desc}\n\n{m}" for m in maps)
    table = ("| ATT&CK technique | mapping | score |\n|---|---|---|\n| T1566 | protect | significant |\n"
             "| T1566.002 | protect | significant |")
    page = Document(id="ctid:m365:DEF-ASP-E3", source="ctid",
                    text=f"# m365:DEF-ASP-E3: Anti-Spoofing mapped to ATT&CK\n\n{body}\n\n{table}\n")
    kept, dropped = fit_and_run(Dedup(), [page], tmp_path, parts=1)
    assert not dropped
    t = kept[0].text
    assert t.count(desc) == 1 and all(m in t for m in maps) and "| T1566.002 |" in t
    assert kept[0].metadata["paragraphs_removed"] == 3
    assert entities_lost([page], kept).emptied == 0


def test_field_paragraph():
    assert field_paragraph("- **Aliases**: CVE-1\n- **Published**: 2021")
    assert field_paragraph("| a | b |\n|---|---|\n| 1 | 2 |")
    assert field_paragraph("1. first\n2. second")
    assert not field_paragraph("Some prose.\n- and a list item")
    assert not field_paragraph("")
