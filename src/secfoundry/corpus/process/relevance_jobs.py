"""Relevance-classifier jobs the CLI runs: train on the seed (+ extras), evaluate on labelled
sets, and bootstrap labels with an LLM (as the Foundation-Sec report did).

Each job is a plain function that takes paths/options and returns data; printing is the
caller's business (``secfoundry corpus relevance ...`` in ``cli/corpus.py``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from secfoundry.corpus.process import relevance as R
from secfoundry.corpus.process import relevance_data as D

LABEL_PROMPT = ("Question: Is the following text about cybersecurity (vulnerabilities, attacks, malware, "
                "threat intelligence, defence, security tools or practices)? Answer Yes or No.\n\n"
                "Text: {text}\n\nAnswer:")


def train_classifier(seed: Path | None = None, extra: Sequence[Path] = (), *, hard_negatives: bool = True,
                     C: float = 16.0, threshold: float = 0.5, char_features: bool = True,
                     out: Path | None = None) -> tuple[Path, dict[str, Any], dict[str, R.Metrics]]:
    """Train the hashed n-gram classifier, evaluate it on every eval set, save it (npz + json).

    Returns ``(model dir, training-data summary, metrics per eval set)``.
    """
    texts, labels, summary = D.training_set(seed, use_hard_negatives=hard_negatives)
    for p in extra:
        ex = [e for e in D.load_jsonl_examples(p, p.stem) if e.split == "train"]
        texts += [e.text for e in ex]
        labels += [e.label for e in ex]
        summary[f"extra:{p.name}"] = len(ex)
    feats = R.FeatureConfig(char_features=R.FeatureConfig().char_features if char_features else 0)
    model = R.train(texts, labels, R.TrainConfig(features=feats, C=C, threshold=threshold), info={"data": summary})
    results: dict[str, R.Metrics] = {}
    for name, ex in D.eval_sets(seed).items():
        results[name] = R.metrics([e.label for e in ex], model.predict([e.text for e in ex]))
        model.info.setdefault("metrics", {})[name] = results[name].__dict__
    return model.save(out or R.default_model_dir()), summary, results


def evaluate_classifier(model_dir: Path | None = None, seed: Path | None = None, data: Sequence[Path] = (), *,
                        threshold: float | None = None, derived: bool = True
                        ) -> tuple[float, dict[str, R.Metrics], dict[str, dict[str, list[int]]]]:
    """Metrics on the seed test split, the hard negatives and extra files, plus errors by source.

    Returns ``(threshold used, metrics per set, {set: {source: [wrong, total]}})``.
    """
    model = R.RelevanceModel.load(model_dir) if model_dir else R.load_or_train_default(seed=seed)
    thr = model.threshold if threshold is None else threshold
    sets = D.eval_sets(seed, derived=derived)
    for p in data:
        sets[p.name] = D.load_jsonl_examples(p, p.stem)
    metrics, errors = {}, {}
    for name, ex in sets.items():
        probs = model.predict_proba([e.text for e in ex])
        metrics[name] = R.metrics([e.label for e in ex], probs >= thr)
        wrong, total = Counter(), Counter()
        for e, p in zip(ex, probs):
            total[e.source] += 1
            wrong[e.source] += int((p >= thr) != bool(e.label))
        errors[name] = {s: [wrong[s], total[s]] for s in sorted(total)}
    return thr, metrics, errors


def label_with_llm(input: Path, out: Path, model: str = "smollm2-135m-instruct", *, limit: int | None = None,
                   batch: int = 8, progress: Callable[[Iterable[int]], Iterable[int]] = lambda r: r) -> int:
    """Add ``label``/``label_score``/``label_source`` to every JSONL row (field ``text``) by asking
    ``model`` whether the text is about security; returns the number of rows written.

    The text is cut to 2,000 characters and placed after the question, so instructions inside it
    can only change its own label (a score), never the output format or other rows.
    """
    from secfoundry.models.base import GenerationConfig
    from secfoundry.models.registry import load_model

    lm = load_model(model)
    rows = [json.loads(x) for x in input.read_text(encoding="utf-8").splitlines() if x.strip()][:limit]
    try:
        with out.open("w", encoding="utf-8") as f:
            for i in progress(range(0, len(rows), batch)):
                chunk = rows[i:i + batch]
                prompts = [LABEL_PROMPT.format(text=r["text"][:2000]) for r in chunk]
                if lm.capabilities.choice_logprobs:
                    scores = [lp[0] - lp[1] for lp in lm.choice_logprobs(prompts, [" Yes", " No"])]
                else:
                    outs = lm.generate(prompts, GenerationConfig(max_new_tokens=3))
                    scores = [1.0 if o.strip().lower().startswith("yes") else -1.0 for o in outs]
                for r, s in zip(chunk, scores):
                    r.update(label=int(s > 0), label_score=round(float(s), 4), label_source=f"llm:{lm.spec}")
                    f.write(json.dumps(r) + "\n")
    finally:
        lm.close()
    return len(rows)
