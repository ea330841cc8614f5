"""The contract between benchmarks (``eval/benchmarks/*``) and the runner (``eval/runner.py``).

A benchmark is a small ``Task``: it loads its items, turns them into model requests under a
protocol, parses one response, and scores a list of parsed responses. The runner owns models,
batching, prefix caching, trials, resuming and files; tasks own everything benchmark-specific.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from secfoundry.models.base import GenerationConfig, Prompt

ProtocolName = Literal["official", "faith"]
Mode = Literal["generate", "logprob"]


@dataclass
class Protocol:
    name: ProtocolName = "faith"
    mode: Mode = "generate"  # logprob: multiple choice by answer-letter log-probabilities
    shots: int | None = None  # None: the protocol's default (faith: 5 for base, 0 for instruct)
    instruct: bool = True  # the model is chat/instruct (zero-shot + chat template under faith)
    temperature: float = 0.0
    trials: int = 1
    seed: int = 1234
    max_new_tokens: int | None = None  # None: the task's default
    permute: bool = False  # also ask every MCQ with rotated options (position-bias check)
    score_options: bool = False  # logprob mode: score option texts instead of letters


@dataclass
class Item:
    id: str  # stable within the benchmark (row index as a string unless the data has ids)
    question: str  # the question/description text as the benchmark states it
    gold: Any  # "C" | "AC" | "CWE-79" | a CVSS vector | ["T1059", ...] | actor name
    options: dict[str, str] = field(default_factory=dict)  # letter -> option text (MCQ only)
    prompt: str = ""  # the benchmark's own full prompt when it ships one (CTIBench Prompt column)
    meta: dict[str, Any] = field(default_factory=dict)  # url, language, domain, source row...


@dataclass
class Request:
    """One thing to ask the model for one item (per trial, per permutation)."""

    item_id: str
    kind: Literal["generate", "choice"]
    prompt: Prompt  # text or chat messages; for "choice" always text (scored after prefix+prompt)
    prefix: str = ""  # shared by all requests of a trial (few-shot block): cached once by the backend
    choices: list[str] = field(default_factory=list)  # "choice": continuations, e.g. [" A"," B"," C"," D"]
    choice_labels: list[str] = field(default_factory=list)  # letters aligned with choices
    gen: GenerationConfig | None = None  # "generate": decoding settings
    variant: str = ""  # "" or e.g. "rot1" for permuted options
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. the letter mapping of a permutation


@dataclass
class Response:
    item_id: str
    text: str | None = None  # generated text
    logprobs: list[float] | None = None  # aligned with Request.choices
    error: str | None = None  # backend failure: counted as invalid, never a crash


@dataclass
class Parsed:
    answer: Any = None  # proper extraction (None when unparseable)
    lenient: Any = None  # lenient extraction (faith protocol), None when unparseable
    valid: bool = False
    meta: dict[str, Any] = field(default_factory=dict)  # extraction details (e.g. per-choice scores)


class Task(ABC):
    name: str = ""  # e.g. "ctibench-mcq"
    family: str = ""  # data folder, e.g. "ctibench"
    kind: str = "mcq"  # mcq | multi-mcq | rcm | vsp | ate | taa
    headline: str = "accuracy"  # metric reported as `score`
    higher_is_better: bool = True
    license: str = ""
    # True: the task picks its few-shot examples itself (``draw_shots``, with its own defaults) and
    # ``requests`` receives the whole eligible pool. False: the runner draws ``protocol.shots``
    # examples (FAITH default: 5 for base models) and ``requests`` receives exactly those.
    draws_shots: bool = False

    @abstractmethod
    def load(self, data_dir: Path | None = None) -> list[Item]:
        """All items, in upstream order. Downloads into the cache when no local copy exists."""

    @abstractmethod
    def requests(self, items: list[Item], protocol: Protocol, trial: int, shots_pool: list[Item]) -> list[Request]:
        """Requests for one trial. Few-shot examples come from ``shots_pool`` (drawn with
        ``protocol.seed + trial``) and are excluded from scoring by the runner."""

    @abstractmethod
    def parse(self, item: Item, request: Request, response: Response, protocol: Protocol) -> Parsed: ...

    @abstractmethod
    def score(self, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> dict[str, Any]:
        """Metrics for one trial: must include ``score`` (the headline), ``n``, ``n_valid``,
        ``parse_failures``, plus named metrics (accuracy, lenient_accuracy, mad, f1...)."""

    def files(self) -> list[tuple[str, str, str]]:
        """(relative path under the data dir, pinned upstream URL, sha256) for every data file."""
        return []

    # --- optional hooks (defaults keep the simple contract above) -----------------------------

    def eligible(self, items: list[Item], protocol: Protocol) -> list[Item]:
        """Items scored under ``protocol`` (default: all). E.g. FAITH RCM drops duplicate
        descriptions. The runner draws shots from and scores only these."""
        return items

    def draw_shots(self, pool: list[Item], protocol: Protocol, trial: int) -> list[Item]:
        """The few-shot examples of one trial (deterministic in ``protocol.seed + trial``); used
        when ``draws_shots`` is True. ``requests`` uses exactly these and returns no request for
        them; the runner excludes them from scoring. Default: no shots."""
        return []

    def parse_prediction(self, item: Item, answer: str | None, protocol: Protocol) -> Parsed:
        """An answer someone else already extracted (``eval score``: one cell per item)."""
        req = Request(item_id=item.id, kind="generate", prompt="")
        return self.parse(item, req, Response(item_id=item.id, text=answer), protocol)

    def score_variants(self, items: list[Item], parsed: dict[str, list[Parsed]], protocol: Protocol) -> dict[str, Any]:
        """Scores when every item was asked in several variants (``protocol.permute``): ``parsed``
        maps variant ("" = original, "rot1"...) to parsed answers aligned with ``items``
        (answers already mapped back to the original letters). Default: the original's score
        plus per-variant scores, their mean, and consistency (share of items whose answer is
        the same valid answer in every variant)."""
        out = dict(self.score(items, parsed.get("", next(iter(parsed.values()))), protocol))
        per = {v or "original": self.score(items, ps, protocol)["score"] for v, ps in parsed.items()}
        out["variant_scores"] = per
        out["variant_mean"] = round(sum(per.values()) / len(per), 2) if per else 0.0
        same = 0
        for i in range(len(items)):
            answers = [ps[i].answer for ps in parsed.values()]
            if all(ps[i].valid for ps in parsed.values()) and len(set(map(str, answers))) == 1:
                same += 1
        out["consistency"] = round(100.0 * same / len(items), 2) if items else 0.0
        return out
