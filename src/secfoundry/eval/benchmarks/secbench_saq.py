"""SecBench short-answer questions (secbench-git/SecBench @ 3a148ab): 270 SAQs graded by an LLM judge.

``SAQs_270.jsonl``: ``{question, answer (the reference), language, domain, ability}``; 267 are
Chinese and 3 English, 30 per domain, 116 knowledge retention (知识记忆) and 154 logical reasoning
(逻辑推理). SecBench grades an answer by asking an LLM (its "grading agent") to compare it with the
reference; ``eval/judge.py`` has our judge prompt (SecBench publishes none) and its 0-10 scale.

* The model under test sees the question alone, zero-shot (instruct models: one user message; base
  models: ``Question: ...\\nAnswer:``), and answers in up to 512 new tokens.
* Each answer is graded once by the judge (``--judge SPEC``; default the embedded SmolLM2, marked
  low-trust); the sample's ``answer`` is the judge's score 0-10 and ``parse_meta`` holds the
  judge prompt, raw output and score (also in ``judgements.jsonl``).
* ``judge_score`` (the headline): mean item score x 10, over the answers the judge could grade
  (an empty answer scores 0 without asking the judge); ``judge_failures`` counts the rest
  (judge error or no score in its output) and ``judge_score_all`` counts them as 0.
  ``pass_rate``: share of graded answers scoring at least 6/10 (a sample's ``correct``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from secfoundry.eval import metrics
from secfoundry.eval.benchmarks import register
from secfoundry.eval.benchmarks._io import need_str, read_jsonl
from secfoundry.eval.benchmarks.base import BenchmarkTask
from secfoundry.eval.judge import DEFAULT_JUDGE, MAX_SCORE, Judge
from secfoundry.eval.task import Item, Parsed, Protocol, Request, Response

ANSWER_TOKENS = 512
PASS_SCORE = 6  # of 10: a sample counts as "correct" from here
_LANG = {"en": "English", "english": "English", "zh": "Chinese", "cn": "Chinese", "chinese": "Chinese"}
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)


@register("secbench-saq")
class SecBenchSAQ(BenchmarkTask):
    name = "secbench-saq"
    family = "secbench"
    kind = "saq"
    headline = "judge_score"
    title = "SecBench SAQ (LLM judge)"
    license = "none stated upstream"
    url = "https://github.com/secbench-git/SecBench"
    data_files = ("secbench-saq",)
    option_names = ("language", "judge")
    uses_judge = True  # eval/judge.attach_judges gives it the run's judge

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.judge: Judge | None = Judge(str(options["judge"])) if options.get("judge") else None

    def load(self, data_dir: Path | None = None) -> list[Item]:
        path = self.path("secbench-saq", data_dir)
        items = []
        for i, rec in enumerate(read_jsonl(path), start=1):
            question = need_str(rec, "question", path, i)
            reference = need_str(rec, "answer", path, i)
            items.append(Item(str(i - 1), question.strip(), reference.strip(),
                              meta={k: rec.get(k, "") for k in ("language", "ability", "domain")}))
        lang = self.options.get("language")
        if lang and str(lang).lower() != "all":
            want = _LANG.get(str(lang).lower(), str(lang))
            items = [it for it in items if it.meta.get("language") == want]
        return items

    def get_judge(self) -> Judge:
        if self.judge is None:  # used outside run_eval without a judge: the embedded default (low trust)
            self.judge = Judge(DEFAULT_JUDGE)
        return self.judge

    # --- requests -------------------------------------------------------------------------------
    def n_shots(self, protocol: Protocol) -> int:
        return 0  # SecBench asks its short-answer questions zero-shot, under either protocol

    def requests(self, items: list[Item], protocol: Protocol, trial: int, shots_pool: list[Item]) -> list[Request]:
        if protocol.mode == "logprob":
            raise ValueError(f"{self.name}: short answers are generated and graded by a judge, "
                             "not chosen by log-probabilities")
        gen = self.gen(protocol, ANSWER_TOKENS, None if protocol.instruct else ["\nQuestion:"], trial=trial)
        out = []
        for it in items:
            prompt: Any = [{"role": "user", "content": it.question}] if protocol.instruct else (
                f"Question: {it.question}\nAnswer:")
            out.append(Request(it.id, "generate", prompt, gen=gen))
        return out

    # --- grading -------------------------------------------------------------------------------
    def prime(self, items: list[Item], requests: list[Request], responses: list[Response]) -> None:
        """Grade a batch of answers in one judge call (the runner calls this before ``parse``, which
        then finds every judgement in the judge's cache)."""
        triples = [(it.question, str(it.gold), _THINK.sub(" ", r.text or "").strip())
                   for it, r in zip(items, responses) if r.error is None]
        triples = [t for t in triples if t[2]]
        if triples:
            self.get_judge().grade_many(triples)

    def parse(self, item: Item, request: Request, response: Response, protocol: Protocol) -> Parsed:
        if response.error is not None:
            return Parsed(meta={"error": response.error})
        answer = _THINK.sub(" ", response.text or "").strip()
        if not answer:
            return Parsed(0.0, 0.0, True, {"note": "empty answer: scored 0 without the judge"})
        judge = self.get_judge()
        j = judge.grade(item.question, str(item.gold), answer)
        meta = {"judge": j.judge, "judge_key": j.key, "judge_prompt": j.prompt, "judge_output": j.output,
                "judge_score": j.score, "judge_cached": j.cached}
        if j.error is not None:
            meta["judge_error"] = j.error
            return Parsed(meta=meta)
        if j.score is None:
            return Parsed(meta=meta)  # the judge gave no usable score: a parse failure
        return Parsed(j.score, j.score, True, meta)

    def parse_prediction(self, item: Item, answer: str | None, protocol: Protocol) -> Parsed:
        return self.parse(item, Request(item.id, "generate", ""), Response(item.id, text=answer), protocol)

    def is_correct(self, item: Item, answer: Any) -> bool:
        return isinstance(answer, (int, float)) and answer >= PASS_SCORE

    def score(self, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> dict[str, Any]:
        graded = [float(p.answer) / MAX_SCORE for p in parsed if p.valid and p.answer is not None]
        n, n_valid = len(items), len(graded)
        out = metrics.base_dict(n, n_valid)
        judge = self.get_judge()
        out.update(judge=judge.spec, judge_low_trust=judge.low_trust, judge_failures=n - n_valid)
        if not graded:
            out.update(score=None, judge_score=None)
            return out
        s = metrics.summarize(graded, seed=protocol.seed)
        out.update(score=s["value"], judge_score=s["value"], stderr=s["stderr"], ci95=s["ci95"],
                   judge_score_all=metrics.pct(sum(graded) / n),
                   pass_rate=metrics.pct(sum(g * MAX_SCORE >= PASS_SCORE for g in graded) / n_valid))
        return out
