"""A deterministic in-process model and a small MCQ task for the runner/report tests.

The model is a real ``LanguageModel`` whose "knowledge" is a rule: it picks the option marked
"(right)" on even-numbered questions and always "A" otherwise, so accuracy, permutation
consistency and few-shot prefixes have known expected values.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

from secfoundry.eval.task import Item, Parsed, Protocol, Request, Response, Task
from secfoundry.models.base import Capabilities, GenerationConfig, LanguageModel, Prompt

LETTERS = "ABCD"


class Crash(BaseException):
    """Simulates the process dying (not an ordinary backend error)."""


class RuleModel(LanguageModel):
    def __init__(self, crash_after: int | None = None, fail_ids: set[str] = frozenset(), chat: bool = False):
        self.spec = "rule:test"
        self.calls: list[tuple[str, str, int]] = []  # (kind, prefix, batch size)
        self.contexts: list[str] = []
        self.crash_after = crash_after
        self.fail_ids = set(fail_ids)
        self.chat = chat

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(generate=True, choice_logprobs=True, prefix_cache=True, chat_template=self.chat)

    def _tick(self) -> None:
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise Crash("killed")

    def _pick(self, text: str) -> str:
        m = re.findall(r"^Q(\d+)\b", text, re.M)
        qn = int(m[-1]) if m else 1
        if any(f"Q{i} " in text for i in self.fail_ids):
            raise RuntimeError("backend failure")
        if qn % 2 == 0:
            last = text[text.rfind(f"Q{qn}"):]
            for line in last.splitlines():
                mm = re.match(r"^([A-D])[.)] .*\(right\)", line)
                if mm:
                    return mm.group(1)
        return "A"

    def choice_logprobs(self, contexts: Sequence[str], choices: Sequence[str], prefix: str = "") -> list[list[float]]:
        self._tick()
        self.calls.append(("choice", prefix, len(contexts)))
        self.contexts.extend(contexts)
        out = []
        for c in contexts:
            pick = self._pick(c)
            out.append([math.log(0.7) if ch.strip() == pick else math.log(0.1) for ch in choices])
        return out

    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig | None = None) -> list[str]:
        self._tick()
        self.calls.append(("generate", "", len(prompts)))
        texts = [p if isinstance(p, str) else "\n".join(m["content"] for m in p) for p in prompts]
        self.contexts.extend(texts)
        return [f"I think so.\nAnswer: {self._pick(t)}" for t in texts]

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "backend": "RuleModel", "revision": "rule-v1"}


def _block(item_q: str, options: dict[str, str], answer: str | None = None) -> str:
    return item_q + "\n" + "\n".join(f"{k}. {v}" for k, v in options.items()) + "\nAnswer:" + (
        f" {answer}" if answer else "")


class ToyMCQ(Task):
    """Percent-scale accuracy over all items, like the real MCQ tasks."""

    name = "toy-mcq"
    family = "toy"
    kind = "mcq"
    headline = "accuracy"

    def __init__(self, n: int = 30):
        self.n = n
        self.loads = 0

    def load(self, data_dir: Path | None = None) -> list[Item]:
        self.loads += 1
        items = []
        for i in range(1, self.n + 1):
            gold = LETTERS[(i * 7) % 4]
            opts = {k: f"option {k}{i}" + (" (right)" if k == gold else "") for k in LETTERS}
            items.append(Item(id=str(i), question=f"Q{i} what?", gold=gold, options=opts))
        return items

    def requests(self, items, protocol: Protocol, trial: int, shots_pool) -> list[Request]:
        prefix = ""
        if protocol.shots:
            prefix = "Header.\n\n" + "".join(_block(s.question, s.options, s.gold) + "\n\n"
                                             for s in shots_pool[:protocol.shots])
        out = []
        for it in items:
            variants = [("", 0)] + ([(f"rot{k}", k) for k in range(1, 4)] if protocol.permute else [])
            for v, k in variants:
                mapping = {LETTERS[p]: LETTERS[(p + k) % 4] for p in range(4)}
                shown = {d: it.options[o] for d, o in mapping.items()}
                if protocol.mode == "logprob":
                    out.append(Request(item_id=it.id, kind="choice", prompt=_block(it.question, shown), prefix=prefix,
                                       choices=[" A", " B", " C", " D"], choice_labels=list(LETTERS), variant=v,
                                       meta={"mapping": mapping}))
                else:
                    out.append(Request(item_id=it.id, kind="generate", variant=v, meta={"mapping": mapping},
                                       prompt=[{"role": "user", "content": _block(it.question, shown)}],
                                       gen=GenerationConfig(max_new_tokens=64, temperature=protocol.temperature)))
        return out

    def parse(self, item: Item, request: Request, response: Response, protocol: Protocol) -> Parsed:
        mapping = request.meta["mapping"]
        if response.logprobs is not None:
            best = max(range(len(response.logprobs)), key=lambda j: response.logprobs[j])
            letter = request.choice_labels[best]
        else:
            m = re.search(r"Answer:\s*([A-D])", response.text or "")
            if not m:
                return Parsed()
            letter = m.group(1)
        ans = mapping[letter]
        return Parsed(answer=ans, lenient=ans, valid=True)

    def score(self, items, parsed, protocol: Protocol) -> dict[str, Any]:
        n = len(items)
        valid = sum(p.valid for p in parsed)
        correct = sum(1 for it, p in zip(items, parsed) if p.valid and p.answer == it.gold)
        acc = round(100.0 * correct / n, 2) if n else 0.0
        return {"score": acc, "accuracy": acc, "lenient_accuracy": acc, "n": n, "n_valid": valid,
                "parse_failures": n - valid, "higher_is_better": True}
