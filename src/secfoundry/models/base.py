"""One interface for every model backend (hf, llamacpp, openai-compatible).

The evaluation harness, the apps and the trainer's periodic eval only talk to this interface.
Backends that cannot provide a capability (e.g. an OpenAI chat endpoint without logprobs)
raise ``NotImplementedError`` from it and say so in ``capabilities``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}
Prompt = str | list[Message]  # raw text, or chat messages (the backend applies its chat template)


@dataclass
class GenerationConfig:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 => greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)  # generation is cut before the first stop string


@dataclass
class Capabilities:
    generate: bool = True
    loglikelihood: bool = False  # continuation log-probabilities
    choice_logprobs: bool = False  # next-token log-probabilities of given choices
    prefix_cache: bool = False  # a shared prefix is computed once and reused
    chat_template: bool = False


class LanguageModel(ABC):
    """A causal language model behind some backend."""

    spec: str = ""  # the spec string it was loaded from

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig | None = None) -> list[str]:
        """Generate one completion per prompt (chat prompts go through the chat template)."""

    def loglikelihood(self, requests: Sequence[tuple[str, str]], prefix: str = "") -> list[tuple[float, bool]]:
        """For each (context, continuation): (sum log P(continuation | prefix+context), greedy?).

        ``prefix`` is shared by all requests and computed once when the backend caches prefixes.
        """
        raise NotImplementedError(f"{type(self).__name__} does not provide log-likelihoods")

    def choice_logprobs(self, contexts: Sequence[str], choices: Sequence[str], prefix: str = "") -> list[list[float]]:
        """Log-probability of each choice as the continuation of prefix+context.

        ``choices`` is the same for every context (e.g. [" A", " B", " C", " D"]). When every
        choice is a single token, backends score them from one next-token distribution (the
        output layer runs at the last position only). Returns one list per context, aligned with
        ``choices``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not provide choice log-probabilities")

    def choice_loglikelihoods(self, contexts: Sequence[str], choices: Sequence[str],
                              prefix: str = "") -> list[list[float]]:
        """``choice_logprobs`` computed as full continuation log-likelihoods, one (context,
        choice) pair each: for multi-token choices and backends without next-token scoring."""
        flat = self.loglikelihood([(ctx, ch) for ctx in contexts for ch in choices], prefix=prefix)
        k = len(choices)
        return [[flat[i * k + j][0] for j in range(k)] for i in range(len(contexts))]

    def apply_chat_template(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        raise NotImplementedError(f"{type(self).__name__} has no chat template")

    def describe(self) -> dict[str, Any]:
        """What to record in a run's config.json: spec, backend, revision or file hash, dtype..."""
        return {"spec": self.spec, "backend": type(self).__name__}

    def close(self) -> None:  # release servers/threads
        pass


# --- prompt text helpers shared by the backends ----------------------------------------------

def split_prefix(prefix: str) -> tuple[str, str]:
    """Split off the prefix's trailing whitespace, which is then tokenized with each suffix.

    BPE tokenizers merge a run of whitespace differently depending on what follows it
    ("\\n\\n" alone is one token, "\\n\\nWhat" is "\\n", "\\n", "What"), so a prefix ending in
    a blank line would otherwise be tokenized unlike the joined text. Cutting at the last
    non-space character makes prefix ids + suffix ids equal the joint tokenization.
    """
    core = prefix.rstrip()
    return core, prefix[len(core):]


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` before the earliest occurrence of any stop string."""
    cut = len(text)
    for s in stop or ():
        if s:
            k = text.find(s)
            if 0 <= k < cut:
                cut = k
    return text[:cut]


def single_token_ids(choices: Sequence[str], encode: Callable[[str], list[int]]) -> list[int] | None:
    """The token id of each choice when every choice is one token; None when some choice is
    longer (then each (context, choice) is scored as a continuation)."""
    if not choices:
        raise ValueError("choice_logprobs needs at least one choice")
    ids = [encode(c) for c in choices]
    return [c[0] for c in ids] if all(len(c) == 1 for c in ids) else None
