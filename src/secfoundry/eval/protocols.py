"""Prompt building for the two protocols.

``official``: each benchmark's own prompt (the benchmark modules hold those strings, since they
differ per benchmark). ``faith`` (how Foundation-Sec-8B was reported):

* base models: k-shot (default 5) with the header below; the shots are drawn from the benchmark
  itself with ``seed + trial`` and are the same for every question of a trial, so the few-shot
  block is a shared ``Request.prefix`` (computed once by backends that cache prefixes). The
  prefix always ends with a blank line, i.e. at a newline boundary, so tokenizers split
  prefix + prompt the same way as the two parts separately.
* instruct models: zero-shot chat with an "Answer: $LETTER" instruction.

Question blocks use the lm-evaluation-harness MMLU layout::

    <question>
    A. <option>
    B. <option>
    ...
    Answer: <letter>
"""

from __future__ import annotations

import random
from typing import Sequence, TypeVar

from secfoundry.models.base import Message

FAITH_HEADER = "The following are multiple choice questions about computer security.\n\n"
FAITH_SHOTS = 5

T = TypeVar("T")


def default_shots(shots: int | None, instruct: bool) -> int:
    """FAITH default: 5 shots for base models, 0 for instruct models."""
    if shots is not None:
        return max(0, int(shots))
    return 0 if instruct else FAITH_SHOTS


def draw_shots(pool: Sequence[T], k: int, seed: int, trial: int) -> list[T]:
    """k examples drawn without replacement with ``seed + trial`` (deterministic)."""
    if k <= 0 or not pool:
        return []
    rng = random.Random(int(seed) + int(trial))
    idx = sorted(rng.sample(range(len(pool)), min(k, len(pool))))
    return [pool[i] for i in idx]


def mcq_block(question: str, options: dict[str, str], answer: str | None = None) -> str:
    """One question in the MMLU layout, ending with "Answer:" (plus " X" for a shot)."""
    lines = [question.strip()]
    lines += [f"{k}. {str(v).strip()}" for k, v in options.items()]
    tail = "Answer:" + (f" {answer}" if answer is not None else "")
    return "\n".join(lines) + "\n" + tail


def fewshot_prefix(shots: Sequence[str], header: str = FAITH_HEADER) -> str:
    """Header plus solved examples, each followed by a blank line (ends at a newline)."""
    return header + "".join(s + "\n\n" for s in shots)


def answer_instruction(letters: str, multi: bool = False) -> str:
    letters = "".join(letters)
    if multi:
        return ("Answer the following multiple choice question; more than one option may be correct. "
                "The last line of your response should be of the following format: "
                f"'Answer: $LETTERS' (without quotes) where LETTERS are all the correct options among {letters}, "
                "e.g. 'Answer: AC'. Think step by step before answering.")
    return ("Answer the following multiple choice question. The last line of your response should be of "
            f"the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of {letters}. "
            "Think step by step before answering.")


def instruct_mcq_messages(question: str, options: dict[str, str], multi: bool = False,
                          system: str | None = None) -> list[Message]:
    """Zero-shot chat prompt of the FAITH protocol for instruct models."""
    body = "\n".join([question.strip(), ""] + [f"{k}) {str(v).strip()}" for k, v in options.items()])
    msgs: list[Message] = []
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": answer_instruction("".join(options), multi) + "\n\n" + body})
    return msgs


def chat(system: str | None, user: str) -> list[Message]:
    msgs: list[Message] = []
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": user})
    return msgs


def as_text(system: str | None, user: str) -> str:
    """Base-model form of a chat prompt (CTIBench ran non-chat endpoints as "system + ' ' + prompt")."""
    return (system + " " if system else "") + user


def rotate(options: dict[str, str], k: int) -> tuple[dict[str, str], dict[str, str]]:
    """Options rotated by k positions. Returns (displayed options, displayed letter -> original
    letter). Rotation by k moves the option at original position i to position i - k."""
    letters = list(options)
    n = len(letters)
    shown: dict[str, str] = {}
    mapping: dict[str, str] = {}
    for pos, letter in enumerate(letters):
        orig = letters[(pos + k) % n]
        shown[letter] = options[orig]
        mapping[letter] = orig
    return shown, mapping


def permutations(options: dict[str, str], permute: bool) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(variant, shown options, mapping) for the original and, when ``permute``, every rotation."""
    ident = {k: k for k in options}
    out = [("", dict(options), ident)]
    if permute:
        for k in range(1, len(options)):
            shown, mapping = rotate(options, k)
            out.append((f"rot{k}", shown, mapping))
    return out
