"""Answer extraction: official rules (CTIBench, CyberMetric, SecEval) and FAITH proper/lenient."""

from __future__ import annotations

import pytest

from secfoundry.eval import parsing as p


@pytest.mark.parametrize("text,want", [
    ("Let me think.\nAnswer: C", "C"),
    ("answer:B", "B"),
    ("**Answer:** D", "D"),
    ("Answer: (A)", "A"),
    ("Answer: [B]", "B"),
    ("Answer: A\n...wait, no.\nAnswer: D", "D"),  # the last statement wins
    ("The answer is B", None),  # not the requested format
    ("Answer: $LETTER", None),  # the instruction echoed back
    ("Answer: E", None),  # not an offered letter
    ("Answer: All of the above", None),
    ("", None),
    (None, None),
])
def test_letter_proper(text, want):
    assert p.letter_proper(text) == want


@pytest.mark.parametrize("text,want", [
    ("Answer: C", "C"),
    ("The correct answer is (B).", "B"),
    ("The answer would be D because ...", "D"),
    ("Correct option: A", "A"),
    ("I would choose option C.", "C"),
    ("B) Process and OS API Execution", "B"),
    ("**D**", "D"),
    ("Reasoning...\n\nC", "C"),
    ("b", "B"),
    ("Execution Prevention is what stops it.", "B"),  # the exact text of one option
    ("I don't know.", None),
    ("A lot of things could be right here", None),  # "A" as an article is not an answer
])
def test_letter_lenient(text, want):
    opts = {"A": "Audit", "B": "Execution Prevention", "C": "Operating System Configuration", "D": "User Account Control"}
    assert p.letter_lenient(text, opts) == want


def test_first_letter_base_continuation():
    assert p.first_letter(" B\n\nQuestion: next") == "B"
    assert p.first_letter(" (C)") == "C"
    assert p.first_letter(" The answer") is None
    assert p.first_letter(" E", "ABCD") is None


@pytest.mark.parametrize("text,want", [
    ("Some reasoning.\nC", "C"),
    ("Reasoning\nB) Process and OS API Execution", "B"),
    ("Reasoning\nThe best option is **D**", "D"),
    ("Reasoning\n**A**\n\n", "A"),
    ("Answer: C.", "C"),
    ("X", "X"),  # explicit refusal: valid, counted wrong
    ("It is about DATA", None),  # a word ending in A is not an answer
    ("", None),
])
def test_ctibench_mcq_last_line(text, want):
    assert p.ctibench_mcq_letter(text) == want


def test_cybermetric_and_seceval_rules():
    assert p.cybermetric_letter("ANSWER: b") == "B"
    assert p.cybermetric_letter("answer C") == "C"  # colon optional
    assert p.cybermetric_letter("I pick D") is None
    assert p.cybermetric_letter("   ") is None
    assert p.seceval_letters("Answer: C, A") == "AC"
    assert p.seceval_letters(" DBA") == "ABD"
    assert p.seceval_letters("none") == ""


def test_letter_sets():
    assert p.letter_set("Answer: A, C") == "AC"
    assert p.letter_set("Answer: B and D") == "BD"
    assert p.letter_set("Answer: CA") == "AC"
    assert p.letter_set("no format") is None
    assert p.letter_set_lenient("Reasoning\n**A, D**") == "AD"
    assert p.leading_letter_set(" AC\n\nQuestion: Which") == "AC"
    assert p.leading_letter_set(" B, D") == "BD"
    assert p.leading_letter_set(" The answer") is None


def test_cwe_extraction():
    text = "This maps to CWE-20 at first sight, but it is really CWE-79.\nCWE-79"
    assert p.last_cwe(text) == "CWE-79"
    assert p.last_cwe("cwe-79") is None  # CTIBench's rule is case-sensitive
    assert p.all_cwes("cwe 79 or CWE-080") == ["CWE-79", "CWE-80"]
    assert p.last_cwe(None) is None


def test_cvss_vector_extraction():
    text = ("AV: Network\n...\nCVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\n"
            "Final: AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H")
    assert p.cvss_vector(text) == "AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H"
    assert p.cvss_vector("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert p.cvss_vector("score 9.8") is None


def test_attack_ids():
    text = "T1059.001 is PowerShell; T1071 for C2.\nT1071, T1059.001, T1573"
    assert p.attack_ids(text) == {"T1071", "T1059", "T1573"}
    assert p.attack_ids("T1071 only in text\nno ids on last line") == {"T1071"}
    assert p.attack_ids(text, main_only=False) == {"T1071", "T1059.001", "T1573"}
    assert p.gold_attack_ids("T1071, T1573, T1083") == {"T1071", "T1573", "T1083"}


@pytest.mark.parametrize("text,want", [
    ("The report points to APT36.\n\nThreat actor: **Transparent Tribe**.", "Transparent Tribe"),
    ("APT29", "APT29"),
    ("Answer: Lazarus Group", "Lazarus Group"),
    ("", None),
])
def test_actor_name(text, want):
    assert p.actor_name(text) == want
