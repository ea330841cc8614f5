"""Answering requests: grouping by shared prefix, length-aware batching, failures as answers.

Choice requests that share a few-shot prefix reach the backend together, so a prefix-caching
backend computes the prefix once. A backend failure becomes ``Response.error`` (an invalid
answer, retried when the run resumes), never a crash; a capability the backend lacks
(``NotImplementedError``) is a configuration error and stops the run.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from typing import Any, Callable

from secfoundry.core.errors import InputError
from secfoundry.eval.task import Request, Response
from secfoundry.models.base import GenerationConfig, LanguageModel
from secfoundry.models.base import split_prefix as split_ws


def _with_prefix(prompt: Any, prefix: str) -> Any:
    """Backends without a prefix argument (generation) see the prefix glued to the prompt."""
    if not prefix:
        return prompt
    if isinstance(prompt, str):
        return prefix + prompt
    msgs = [dict(m) for m in prompt]
    for m in msgs:  # chat prompts: the shared block opens the first user turn
        if m.get("role") == "user":
            m["content"] = prefix + m["content"]
            break
    else:
        msgs.insert(0, {"role": "user", "content": prefix})
    return msgs


def _gen_key(g: GenerationConfig | None) -> str:
    return json.dumps(dataclasses.asdict(g) if g else None, sort_keys=True)


# Padded batches cost (rows x longest prompt), and attention grows with the square of the length:
# long prompts (CTIBench-TAA reports, ~3k tokens) go in small batches, short ones in full batches.
BATCH_CHAR_BUDGET = 24_000  # about 6k tokens of prompt text per batch


def _prompt_chars(r: Request) -> int:
    """Prompt length the backend actually runs (the cached prefix of a choice request is free)."""
    p = r.prompt if isinstance(r.prompt, str) else "".join(m.get("content", "") for m in r.prompt)
    return len(p) + (len(r.prefix) if r.kind == "generate" else 0)


def batches(reqs: list[Request], batch_size: int, char_budget: int = BATCH_CHAR_BUDGET) -> list[list[Request]]:
    """Length-sorted batches of at most ``batch_size`` rows whose padded size (rows x longest
    prompt) stays within ``char_budget`` (a single longer prompt still gets its own batch)."""
    ordered = sorted(reqs, key=lambda r: -_prompt_chars(r))
    out: list[list[Request]] = []
    cur: list[Request] = []
    longest = 0
    for r in ordered:
        n = _prompt_chars(r)
        if cur and (len(cur) >= batch_size or max(longest, n) * (len(cur) + 1) > char_budget):
            out.append(cur)
            cur, longest = [], 0
        cur.append(r)
        longest = max(longest, n)
    if cur:
        out.append(cur)
    return out


def execute(model: LanguageModel, requests: list[Request], batch_size: int,
            on_batch: Callable[[list[Request], list[Response]], None]) -> None:
    """Answer ``requests`` in batches; ``on_batch`` receives each finished batch.

    Choice requests are grouped by (prefix, choices): a group shares its few-shot prefix, so a
    prefix-caching backend computes it once. Within a group, prompts are sorted by length and
    batched under a padding budget. Backend failures become ``Response.error`` (invalid, never
    a crash).
    """
    groups: dict[tuple, list[Request]] = defaultdict(list)
    for r in requests:
        if r.kind == "choice":
            groups[("choice", r.prefix, tuple(r.choices))].append(r)
        else:
            groups[("generate", _gen_key(r.gen))].append(r)
    for key, reqs in groups.items():
        for batch in batches(reqs, batch_size):
            on_batch(batch, _answer(model, key[0], batch))


def _answer(model: LanguageModel, kind: str, batch: list[Request]) -> list[Response]:
    try:
        if kind == "choice":
            return _answer_choice(model, batch)
        prompts = [_with_prefix(r.prompt, r.prefix) for r in batch]
        texts = model.generate(prompts, batch[0].gen)
        return [Response(item_id=r.item_id, text=t) for r, t in zip(batch, texts, strict=True)]
    except NotImplementedError:
        raise  # a capability the backend lacks is a configuration error, not an invalid answer
    except Exception as e:  # noqa: BLE001 - recorded per request, never stops the run
        if len(batch) > 1:  # isolate the failing request(s)
            return [resp for r in batch for resp in _answer(model, kind, [r])]
        return [Response(item_id=batch[0].item_id, error=f"{type(e).__name__}: {e}")]


def split_prefix(prefix: str, contexts: list[str]) -> tuple[str, list[str]]:
    """Move the prefix's trailing whitespace into every context.

    Backends tokenize the cached prefix and each context separately. Byte-level BPE tokenizers
    (GPT-2 style, e.g. SmolLM2) tokenize "B\n\n" alone as one "\n\n" token but "B\n\nHow" as
    "\n", "\n", "How"; cutting before the whitespace run ("...Answer: B" | "\n\nHow...") gives
    exactly the tokens of the joined text, so cached and uncached scoring (and other harnesses
    that tokenize the whole prompt) see the same ids.
    """
    head, tail = split_ws(prefix)
    if not tail or not head:
        return prefix, contexts
    return head, [tail + c for c in contexts]


def _answer_choice(model: LanguageModel, batch: list[Request]) -> list[Response]:
    choices = list(batch[0].choices)
    contexts = [r.prompt for r in batch]
    if any(not isinstance(c, str) for c in contexts):
        raise InputError("choice requests must carry a text prompt", field="Request.prompt")
    prefix, contexts = split_prefix(batch[0].prefix, contexts)  # type: ignore[arg-type]
    try:
        lps = model.choice_logprobs(contexts, choices, prefix=prefix)
    except NotImplementedError:  # fall back to full continuation log-likelihoods
        lps = model.choice_loglikelihoods(contexts, choices, prefix=prefix)
    return [Response(item_id=r.item_id, logprobs=[float(x) for x in lp]) for r, lp in zip(batch, lps, strict=True)]
