"""Shared machinery for multiple-choice benchmarks (one or several correct letters).

A concrete benchmark gives its data files, a loader, and its *official* prompt and parser; the
FAITH protocol, log-probability scoring, option permutation and scoring are common.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from secfoundry.eval import data as bdata
from secfoundry.eval import metrics, parsing
from secfoundry.eval import protocols as P
from secfoundry.eval.task import Item, Parsed, Protocol, Request, Response, Task
from secfoundry.models.base import GenerationConfig, Prompt

# Max new tokens for a base model continuing "Answer:" (" B" plus slack for odd tokenizers).
BASE_ANSWER_TOKENS = 8
INSTRUCT_TOKENS = 1024


class BenchmarkTask(Task):
    """Common parts: data files, shots, permutation bookkeeping."""

    data_files: tuple[str, ...] = ()  # keys of ``secfoundry.eval.data.FILES``
    title: str = ""
    url: str = ""  # homepage / paper

    option_names: tuple[str, ...] = ()  # options accepted by get_task(name, **options)
    draws_shots = True  # n_shots() applies the protocol's defaults; requests() draws from the pool

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.option_names))
        if unknown:
            raise ValueError(f"{self.name}: unknown option(s) {unknown}; accepted: {list(self.option_names) or 'none'}")
        self.options = options

    def files(self) -> list[tuple[str, str, str]]:
        out = []
        for key in self.data_files:
            f = bdata.FILES[key]
            out.append((f.relpath, f.url, f.sha256 or ""))
        return out

    def path(self, key: str, data_dir: Path | str | None) -> Path:
        return bdata.resolve(bdata.FILES[key], data_dir)

    def data_description(self, data_dir: Path | str | None = None) -> list[dict[str, Any]]:
        """File, url, pinned and actual sha256 of every data file (for run configs)."""
        return bdata.describe([bdata.FILES[k] for k in self.data_files], data_dir)

    # shots ----------------------------------------------------------------------------------
    def n_shots(self, protocol: Protocol) -> int:
        """faith: 5 for base models (and for any model in logprob mode), 0 for instruct models;
        official: 0 unless ``--shots`` asks for drawn shots in logprob mode."""
        if protocol.name == "faith":
            return P.default_shots(protocol.shots, protocol.instruct and protocol.mode != "logprob")
        if protocol.mode == "logprob" and protocol.shots:
            return int(protocol.shots)
        return 0

    def draw_shots(self, pool: list[Item], protocol: Protocol, trial: int) -> list[Item]:
        return P.draw_shots(pool, self.n_shots(protocol), protocol.seed, trial)

    def gen(self, protocol: Protocol, default_tokens: int, stop: list[str] | None = None,
            trial: int = 0) -> GenerationConfig:
        return GenerationConfig(max_new_tokens=protocol.max_new_tokens or default_tokens,
                                temperature=protocol.temperature, seed=protocol.seed + trial,
                                stop=list(stop or []))


class MCQTask(BenchmarkTask):
    kind = "mcq"
    headline = "accuracy"
    letters = "ABCD"
    multi = False  # answers are letter sets ("AC")
    official_denominator = "all"  # "valid": accuracy over parseable answers (CTIBench)
    official_system: str | None = None
    official_tokens = 512

    # --- to implement per benchmark -----------------------------------------------------------
    def official_prompt(self, item: Item) -> tuple[str | None, str]:
        """(system prompt, user prompt) of the benchmark's own protocol."""
        raise NotImplementedError

    def official_parse(self, text: str | None) -> str | None:
        raise NotImplementedError

    def official_prefix(self, protocol: Protocol) -> str:
        """A fixed text few-shot block of the official protocol for base models (SecEval)."""
        return ""

    # --- requests -------------------------------------------------------------------------------
    def requests(self, items: list[Item], protocol: Protocol, trial: int, shots_pool: list[Item]) -> list[Request]:
        shots = self.draw_shots(shots_pool, protocol, trial)
        shot_ids = {s.id for s in shots}
        prefix = P.fewshot_prefix([P.mcq_block(s.question, s.options, s.gold) for s in shots]) if shots else ""
        if protocol.mode == "logprob" and not shots and protocol.name == "faith":
            prefix = P.FAITH_HEADER
        out: list[Request] = []
        for item in items:
            if item.id in shot_ids:
                continue
            for variant, shown, mapping in P.permutations(item.options, protocol.permute):
                req = self._request(item, shown, protocol, trial, prefix)
                req.variant = variant
                req.meta["mapping"] = mapping
                req.meta["options"] = shown
                out.append(req)
        return out

    def _request(self, item: Item, shown: dict[str, str], protocol: Protocol, trial: int, prefix: str) -> Request:
        letters = list(shown)
        if protocol.mode == "logprob":
            if self.multi:
                raise ValueError(f"{self.name}: multi-answer questions cannot be scored by letter log-probabilities")
            text = P.mcq_block(item.question, shown)
            if protocol.score_options:
                return Request(item.id, "choice", text, prefix=prefix,
                               choices=[" " + str(shown[k]).strip() for k in letters], choice_labels=letters,
                               meta={"score_options": True})
            return Request(item.id, "choice", text, prefix=prefix, choices=[" " + k for k in letters],
                           choice_labels=letters)
        if protocol.name == "official":
            system, user = self.official_prompt(self._shown_item(item, shown))
            prompt: Prompt = P.chat(system, user) if protocol.instruct else P.as_text(system, user)
            return Request(item.id, "generate", prompt,
                           prefix="" if protocol.instruct else self.official_prefix(protocol),
                           gen=self.gen(protocol, self.official_tokens, trial=trial))
        # faith
        if protocol.instruct and not prefix:
            return Request(item.id, "generate", P.instruct_mcq_messages(item.question, shown, self.multi),
                           gen=self.gen(protocol, INSTRUCT_TOKENS, trial=trial))
        return Request(item.id, "generate", P.mcq_block(item.question, shown), prefix=prefix or P.FAITH_HEADER,
                       gen=self.gen(protocol, BASE_ANSWER_TOKENS + (8 if self.multi else 0), ["\n"], trial=trial))

    def _shown_item(self, item: Item, shown: dict[str, str]) -> Item:
        if shown == item.options:
            return item
        return Item(item.id, item.question, item.gold, dict(shown), prompt="", meta=item.meta)

    # --- parsing -------------------------------------------------------------------------------
    def _map(self, ans: str | None, mapping: dict[str, str] | None) -> str | None:
        if ans is None or not mapping:
            return ans
        mapped = "".join(mapping.get(c, c) for c in ans)
        return "".join(sorted(mapped)) if self.multi else mapped

    def parse(self, item: Item, request: Request, response: Response, protocol: Protocol) -> Parsed:
        mapping = request.meta.get("mapping")
        if response.error:
            return Parsed(meta={"error": response.error})
        if request.kind == "choice":
            lps = response.logprobs
            if not lps or len(lps) != len(request.choice_labels) or any(
                    lp is None or (isinstance(lp, float) and math.isnan(lp)) for lp in lps):
                return Parsed()
            labels = request.choice_labels
            best = labels[max(range(len(lps)), key=lambda i: lps[i])]
            meta: dict[str, Any] = {"logprobs": dict(zip(labels, lps))}
            lenient = best
            if request.meta.get("score_options"):
                # acc_norm: log-likelihood per byte of the option text (lm-eval's length normalisation)
                norm = [lp / max(1, len(c.encode("utf-8"))) for lp, c in zip(lps, request.choices)]
                lenient = labels[max(range(len(norm)), key=lambda i: norm[i])]
                meta["normalized_choice"] = self._map(lenient, mapping)
            return Parsed(self._map(best, mapping), self._map(lenient, mapping), True, meta)
        text = response.text
        shown = request.meta.get("options") or item.options
        if protocol.name == "official":
            ans = self.official_parse(text)
            return Parsed(self._map(ans, mapping), self._map(ans, mapping), ans is not None)
        letters = "".join(shown)
        if self.multi and isinstance(request.prompt, str):  # base model continuing "Answer:"
            proper = parsing.leading_letter_set(text, letters)
            lenient = proper or parsing.letter_set_lenient(text, letters)
        elif self.multi:
            proper = parsing.letter_set(text, letters)
            lenient = parsing.letter_set_lenient(text, letters)
        elif isinstance(request.prompt, str):  # base model continuing "Answer:"
            proper = parsing.first_letter(text, letters)
            lenient = proper or parsing.letter_lenient(text, shown, letters)
        else:
            proper = parsing.letter_proper(text, letters)
            lenient = parsing.letter_lenient(text, shown, letters)
        return Parsed(self._map(proper, mapping), self._map(lenient, mapping), proper is not None)

    def parse_prediction(self, item: Item, answer: str | None, protocol: Protocol) -> Parsed:
        ans = (answer or "").strip().upper()
        ok = bool(ans) and all(c in self.letters for c in ans) and (self.multi or len(ans) == 1)
        if self.multi:
            ans = "".join(sorted(set(ans)))
        return Parsed(ans if ok else None, ans if ok else None, ok)

    # --- scoring -------------------------------------------------------------------------------
    def is_correct(self, item: Item, answer: Any) -> bool:
        return answer is not None and str(answer).upper() == str(item.gold).upper()

    def score(self, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> dict[str, Any]:
        correct = [self.is_correct(i, p.answer) for i, p in zip(items, parsed)]
        valid = [p.valid for p in parsed]
        lenient = [self.is_correct(i, p.lenient) for i, p in zip(items, parsed)]
        over = self.official_denominator if protocol.name == "official" else "all"
        out = metrics.accuracy_scores(correct, valid, over=over, lenient=lenient, seed=protocol.seed)
        if protocol.mode == "logprob" and protocol.score_options:
            # lenient slot carries the length-normalised choice: report it as acc_norm
            out["acc_norm"] = out.pop("lenient_accuracy")
            out.pop("lenient_stderr", None)
            out.pop("lenient_ci95", None)
        return out
