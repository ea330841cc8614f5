"""SecBench (secbench-git/SecBench, 2024): 2,730 MCQs, Chinese and English.

JSONL ``{question, answers: [4 or 5 options], label: "B" | "ABD", language: "Chinese" |
"English", ability, domain}``. There is no official scorer: a question is correct only when the
chosen letter set equals the label.

* ``secbench-mcq``: all 2,730 (2,069 Chinese, 661 English); ``language=English|Chinese`` filters
  (``en``/``zh`` accepted). Multi-letter labels, up to 5 options (A-E).
* ``secbench-mcq-eng``: the FAITH subset, 585 items: language English (661) -> no CJK
  character in the question (603) -> a single label among A-D with four options (594) ->
  duplicates removed (581; same question and options after whitespace/case normalisation,
  first occurrence kept).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from secfoundry.errors import InputError
from secfoundry.eval import parsing
from secfoundry.eval.benchmarks import register
from secfoundry.eval.benchmarks._io import need_letter, need_str, read_jsonl
from secfoundry.eval.benchmarks.base import MCQTask
from secfoundry.eval.task import Item

LETTERS = "ABCDEFGH"
# CJK ideographs, kana, hangul, CJK punctuation and full-width forms.
CJK = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_LANG = {"en": "English", "english": "English", "zh": "Chinese", "cn": "Chinese", "chinese": "Chinese"}


def _norm(s: str) -> str:
    return " ".join(str(s).split()).casefold()


@register("secbench-mcq")
class SecBenchMCQ(MCQTask):
    name = "secbench-mcq"
    family = "secbench"
    kind = "multi-mcq"
    multi = True
    letters = LETTERS
    title = "SecBench MCQ"
    license = "none stated upstream"
    url = "https://github.com/secbench-git/SecBench"
    data_files = ("secbench-mcq",)
    option_names = ("language",)
    official_tokens = 256

    def load(self, data_dir: Path | None = None) -> list[Item]:
        path = self.path("secbench-mcq", data_dir)
        items = []
        for i, rec in enumerate(read_jsonl(path), start=1):
            question = need_str(rec, "question", path, i)
            answers = rec.get("answers")
            if not isinstance(answers, list) or len(answers) < 2 or not all(isinstance(a, str) for a in answers):
                raise InputError("expected a list of option strings", file=str(path), row=i, field="answers")
            options = {LETTERS[k]: a for k, a in enumerate(answers)}
            label = need_letter(need_str(rec, "label", path, i), "".join(options), path, i, "label", multi=True)
            items.append(Item(str(i - 1), question, "".join(sorted(set(label))), options,
                              meta={k: rec.get(k, "") for k in ("language", "ability", "domain")}))
        return self.select(items)

    def select(self, items: list[Item]) -> list[Item]:
        lang = self.options.get("language")
        if not lang or str(lang).lower() == "all":
            return items
        want = _LANG.get(str(lang).lower(), str(lang))
        return [it for it in items if it.meta.get("language") == want]

    def official_prompt(self, item: Item) -> tuple[str | None, str]:
        opts = "\n".join(f"{k}. {v}" for k, v in item.options.items())
        return None, (f"Question: {item.question}\n{opts}\n\nChoose the correct option(s). Reply with the letter(s) "
                      "of the correct option(s) on the last line in the format 'Answer: X' (e.g. 'Answer: B' or "
                      "'Answer: AC').")

    def official_parse(self, text: str | None) -> str | None:
        return parsing.letter_set_lenient(text, LETTERS)

    def is_correct(self, item: Item, answer: Any) -> bool:
        return answer is not None and "".join(sorted(set(str(answer).upper()))) == item.gold


@register("secbench-mcq-eng")
class SecBenchMCQEng(SecBenchMCQ):
    name = "secbench-mcq-eng"
    kind = "mcq"
    multi = False
    letters = "ABCD"
    title = "SecBench MCQ (English, FAITH subset)"
    option_names = ()

    def select(self, items: list[Item]) -> list[Item]:
        seen: set[tuple[str, ...]] = set()
        out = []
        for it in items:
            if it.meta.get("language") != "English" or CJK.search(it.question):
                continue
            if len(it.gold) != 1 or it.gold not in "ABCD" or list(it.options) != list("ABCD"):
                continue
            key = (_norm(it.question), *(_norm(v) for v in it.options.values()))
            if key in seen:
                continue
            seen.add(key)
            out.append(it)
        return out

    def official_parse(self, text: str | None) -> str | None:
        return parsing.letter_lenient(text, None, "ABCD")
