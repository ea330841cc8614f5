"""Dataset loader for the ``secfoundry_prompts`` lm-eval task (see the YAML beside it).

Each JSONL row: {"id", "text" (the full prompt, few-shot prefix included), "choices"
(["A", "B", "C", "D"]), "gold" (index of the right choice)}.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def load(prompts: str | None = None, **_: object):
    import datasets

    path = prompts or os.environ.get("SECFOUNDRY_LMEVAL_PROMPTS")
    if not path:
        raise ValueError("set SECFOUNDRY_LMEVAL_PROMPTS to the prompts JSONL written by bench/eval_throughput.py")
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
