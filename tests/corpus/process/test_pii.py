"""PII replacement keeps IOCs: measured on a labelled set of tricky cases."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from secfoundry.corpus.process.pii import PIIConfig, PIIScrubber, PIIStep, iban_ok, luhn_ok
from secfoundry.core.documents import Document

CASES = [json.loads(x) for x in (Path(__file__).parent / "data" / "pii_labelled.jsonl").read_text().splitlines()]


def test_labelled_set_size():
    assert len(CASES) >= 60
    kinds = Counter(k for c in CASES for k in ("EMAIL", "PHONE", "CREDIT_CARD", "SSN", "SECRET", "PRIVATE_KEY", "IBAN", "NAME")
                    if f"<{k}>" in c["expected"])
    assert all(kinds[k] >= 2 for k in kinds if k != "NAME") and len(kinds) >= 7
    assert sum(c["text"] == c["expected"] for c in CASES) >= 30  # many must-keep (IOC) cases


def test_labelled_set_exact():
    s = PIIScrubber()
    failures = [(c["note"], s.scrub(c["text"])[0]) for c in CASES if s.scrub(c["text"])[0] != c["expected"]]
    assert not failures, failures


def test_placeholder_precision_recall():
    """Per-placeholder counts over the set: no IOC replaced (precision) and no PII missed (recall)."""
    s = PIIScrubber()
    tp = fp = fn = 0
    for c in CASES:
        got = Counter(r.kind for r in s.find(c["text"]))
        exp = Counter({k: c["expected"].count(f"<{k}>") - c["text"].count(f"<{k}>") for k in
                       ("EMAIL", "PHONE", "CREDIT_CARD", "SSN", "SECRET", "PRIVATE_KEY", "IBAN", "NAME", "ADDRESS")})
        tp += sum((got & exp).values())
        fp += sum((got - exp).values())
        fn += sum((exp - got).values())
    assert fp == 0 and fn == 0, (tp, fp, fn)


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE00 1234 5678 9012 3456 78")


def test_step_and_config():
    d = PIIStep()(Document(id="1", source="crawl", text="mail bob.jones@gmail.com from 10.0.0.1")).doc
    assert d.text == "mail <EMAIL> from 10.0.0.1" and d.metadata["pii"] == {"EMAIL": 1}
    only_keys = PIIScrubber(PIIConfig(kinds=["SECRET"]))
    assert only_keys.scrub("bob.jones@gmail.com AKIAIOSFODNN7EXAMPLE")[0] == "bob.jones@gmail.com <SECRET>"
    strict = PIIScrubber(PIIConfig(keep_role_emails=False))
    assert strict.scrub("security@openssl.org")[0] == "<EMAIL>"
