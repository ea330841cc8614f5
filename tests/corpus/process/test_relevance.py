"""Relevance classifier: training, no-pickle persistence, step behaviour, quality on the seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from secfoundry.corpus.process import relevance as R
from secfoundry.corpus.process import relevance_data as D
from secfoundry.corpus.process.relevance import RelevanceConfig, RelevanceModel, RelevanceStep
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError


@pytest.fixture(scope="module")
def seed(seed_examples):
    return seed_examples


def test_heldout_quality(seed, small_model):
    model, _ = small_model
    test = [e for e in seed if e.split == "test"]
    m = R.metrics([e.label for e in test], model.predict([e.text for e in test]))
    assert m.f1 >= 0.93, m  # the full default model reaches ~0.975 (BENCHMARKS.md)


def test_roundtrip_without_pickle(small_model):
    model, d = small_model
    assert sorted(p.name for p in d.iterdir()) == ["relevance.json", "relevance.npz"]
    with np.load(d / "relevance.npz", allow_pickle=False) as z:
        assert z["weights"].dtype == np.float32
    again = RelevanceModel.load(d)
    texts = ["SQL injection in the login form allows remote attackers to run arbitrary SQL.", "I baked bread."]
    assert np.allclose(again.predict_proba(texts), model.predict_proba(texts))
    meta = json.loads((d / "relevance.json").read_text())
    assert meta["format"] == R.MODEL_FORMAT and meta["info"]["n_train"] > 1500


def test_bad_model_dir(tmp_path):
    with pytest.raises(InputError, match="relevance.json"):
        RelevanceModel.load(tmp_path)
    (tmp_path / "relevance.json").write_text('{"format": "something-else"}')
    with pytest.raises(InputError, match="format"):
        RelevanceModel.load(tmp_path)


def test_step_batch(small_model):
    model, _ = small_model
    step = RelevanceStep(RelevanceConfig(), model=model)
    docs = [
        Document(id="a", source="crawl", text="A heap-based buffer overflow in the parser allows remote "
                 "attackers to execute arbitrary code via a crafted file."),
        Document(id="b", source="crawl", text="Preheat the oven, mix flour and butter, and bake the cake for "
                 "forty minutes until golden. Serve with fresh cream and strawberries."),
        Document(id="c", source="kev", text="Short record"),  # trusted connector: not classified
    ]
    kept, dropped = step.run_batch(docs)
    assert [d.id for d in kept] == ["a", "c"] and kept[1].metadata["relevance"] is None
    assert dropped[0].doc.id == "b" and dropped[0].reason.startswith("relevance:")
    assert step.apply(docs[1]).doc is None


def test_training_data_sets(seed):
    hw = D.handwritten_negatives()
    assert len(hw) >= 60 and all(e.label == 0 for e in hw)
    assert {e.split for e in hw} == {"train", "test"}
    seed_texts = {e.text for e in seed}
    assert D.hash_split("abc") == D.hash_split("abc")
    bad = [e for e in hw if D.SECURITY_TOPIC.search(e.text) and "hack" in e.text.lower()]
    assert not bad
    assert not (seed_texts & {e.text for e in hw})


def test_bad_training_file(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(InputError, match="row 2"):
        D.load_jsonl_examples(p)
