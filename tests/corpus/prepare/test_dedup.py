from __future__ import annotations

import random

from secfoundry.corpus.prepare.dedup_exact import ExactDedup
from secfoundry.corpus.prepare.dedup_minhash import MinHashDedup, entities_compatible
from secfoundry.corpus.prepare.dedup_paragraph import ParagraphDedup, split_paragraphs
from secfoundry.core.documents import Document

from .helpers import fit_and_run

WORDS = ("attacker payload exploit kernel buffer overflow remote code execution privilege escalation "
         "credential token session cookie injection parser heap memory firmware driver network packet "
         "service authentication bypass configuration default admin console endpoint request header").split()


def prose(seed: int, n: int = 120) -> str:
    rng = random.Random(seed)
    sents = []
    for _ in range(n // 12):
        sents.append(" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + ".")
    return " ".join(sents)


def D(i, text, source="web"):
    return Document(id=str(i), text=text, source=source)


def test_exact_dedup_normalised_keeps_first(tmp_path):
    docs = [D("a", "Hello   World\n"), D("b", "other"), D("c", "hello world"), D("d", "HELLO WORLD ")]
    kept, dropped = fit_and_run(ExactDedup(), docs, tmp_path)
    assert [d.id for d in kept] == ["a", "b"]
    assert {d.doc.id: d.doc.metadata["duplicate_of"] for d in dropped} == {"c": "a", "d": "a"}
    assert all(d.reason == "dedup:exact" for d in dropped)


def test_paragraph_dedup_entity_salt_and_code_fences(tmp_path):
    shared = prose(1, 60)
    template = "The product is affected by {} which lets a remote attacker run code through a crafted request to the admin console."
    code = "```python\ndef f():\n\n    return 1\n```"
    docs = [
        D(1, f"# One\n\n{shared}\n\n{template.format('CVE-2024-0001')}\n\n{prose(2)}"),
        D(2, f"# Two\n\n{shared}\n\n{template.format('CVE-2024-0002')}\n\n{prose(3)}\n\n{code}"),
        D(3, f"# Three\n\n{shared}\n\n{template.format('CVE-2024-0001')}\n\n{prose(4)}"),
    ]
    kept, dropped = fit_and_run(ParagraphDedup(), docs, tmp_path)
    by_id = {d.id: d.text for d in kept}
    assert not dropped
    assert shared in by_id["1"] and shared not in by_id["2"] and shared not in by_id["3"]
    assert "CVE-2024-0002" in by_id["2"]  # same template, different id: new text
    assert "CVE-2024-0001" not in by_id["3"]  # exact repeat of doc 1's paragraph (same id)
    assert "# Two" in by_id["2"]  # short headings are never removed
    assert code in by_id["2"]
    assert split_paragraphs(code) == [code]


def test_entity_guard_rules():
    assert not entities_compatible(frozenset({"CWE-79"}), frozenset({"CWE-80"}))
    assert entities_compatible(frozenset({"PYSEC-2024-1", "CVE-2024-1"}), frozenset({"GHSA-xxxx", "CVE-2024-1"}))
    assert not entities_compatible(frozenset({"CVE-2024-1", "CWE-79"}), frozenset({"CVE-2024-2", "CWE-79"}))
    assert entities_compatible(frozenset(), frozenset({"CVE-2024-1"}))


def planted_set(n_base: int = 40, seed: int = 0):
    """Near-duplicate mirrors (must merge) and one-template pages differing only in an id (must not)."""
    rng = random.Random(seed)
    docs, dup_pairs = [], set()
    for i in range(n_base):
        base = f"CVE-2023-{1000 + i} advisory.\n\n" + prose(100 + i, 240)
        docs.append(D(f"base{i}", base))
        mirror = base.replace("advisory.", "advisory (mirror).") + "\n\nRetrieved from a mirror site."
        words = mirror.split()
        for _ in range(3):  # small edits
            words[rng.randrange(len(words))] = rng.choice(WORDS)
        docs.append(D(f"mirror{i}", " ".join(words)))
        dup_pairs.add((f"mirror{i}", f"base{i}"))
    template = prose(999, 240)
    for i in range(30):
        docs.append(D(f"cwe{i}", f"CWE-{100 + i}: Weakness entry.\n\n{template}\n\nSee CWE-{100 + i} for details."))
    return docs, dup_pairs


def test_minhash_planted_precision_recall(tmp_path):
    docs, truth = planted_set()
    kept, dropped = fit_and_run(MinHashDedup(), docs, tmp_path)
    found = {(d.doc.id, d.doc.metadata["duplicate_of"]) for d in dropped}
    tp = len(found & truth)
    precision = tp / max(1, len(found))
    recall = tp / len(truth)
    assert precision == 1.0, sorted(found - truth)[:5]
    assert recall >= 0.95
    assert sum(d.id.startswith("cwe") for d in kept) == 30  # template pages all kept


def test_parallel_fits_match_serial(ray_local, tmp_path):
    """Paragraph hashing and MinHash signatures run as Ray tasks per partition when Ray is up;
    the result must be the serial fit's, document for document."""
    docs, _ = planted_set()
    shared = prose(7, 60)
    docs = docs + [D(f"p{i}", f"# Page {i}\n\n{shared}\n\n{prose(100 + i)}") for i in range(6)]
    for step_cls in (ParagraphDedup, MinHashDedup):
        serial = fit_and_run(step_cls(), docs, tmp_path / f"{step_cls.name}-1", parts=5)
        parallel = fit_and_run(step_cls(), docs, tmp_path / f"{step_cls.name}-2", parts=5, num_cpus=2)
        assert [(d.id, d.text) for d in serial[0]] == [(d.id, d.text) for d in parallel[0]]
        assert [(d.doc.id, d.reason) for d in serial[1]] == [(d.doc.id, d.reason) for d in parallel[1]]
        assert serial[1]  # both steps did remove something here
