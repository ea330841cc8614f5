"""Fixtures for the process-stage tests: a small relevance model trained once per session."""

from __future__ import annotations

import random

import pytest

from secfoundry.corpus.process import relevance as R
from secfoundry.corpus.process import relevance_data as D

SMALL = R.FeatureConfig(word_features=2**16, char_features=0)  # word n-grams only: fast to train


@pytest.fixture(scope="session")
def seed_examples(datasets_dir):
    return D.load_seed(datasets_dir / "relevance-seed.jsonl")


@pytest.fixture(scope="session")
def small_model(seed_examples, tmp_path_factory):
    """Trained on 1,500 paragraphs of the train split + handwritten negatives, saved and reloaded."""
    train = [e for e in seed_examples if e.split == "train"]
    random.Random(0).shuffle(train)
    train = train[:1500] + D.handwritten_negatives()
    model = R.train([e.text for e in train], [e.label for e in train], R.TrainConfig(features=SMALL, C=8.0))
    d = model.save(tmp_path_factory.mktemp("relevance"))
    return R.RelevanceModel.load(d), d
