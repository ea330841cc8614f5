"""SecBench (secbench-git/SecBench @ 3a148ab, 2024): multiple-choice questions, Chinese and English.

``MCQs_2730.jsonl``: ``{question, answers: [4 or 5 options], label: "B" | "ABD", language:
"Chinese" | "English", ability, domain}``. There is no official scorer: a question is correct
only when the chosen letter set equals the label. Item ids are 0-based row numbers of the file
(FAITH's ``df`` index). The short-answer questions are ``secbench-saq`` (``secbench_saq.py``).

Subsets (each count is checked by ``tests/eval/test_secbench_subsets.py`` against this table):

| benchmark | derivation, in file order | items |
|---|---|---|
| ``secbench-mcq`` | every row; ``language=English`` or ``language=Chinese`` filters | 2730 |
| | language English | 661 |
| | language Chinese | 2069 |
| | English, no CJK ideograph (U+4E00-U+9FFF) in the question | 604 |
| ``secbench-mcq-eng-595`` | FAITH's published ``secbench-mcqa-eng`` config (and its data watermark): the 604 whose label is a single letter among A-D | 595 |
| ``secbench-mcq-eng`` | the FAITH set of issue #16: the 595 without the eight fixed rows 224, 825, 1152, 2038, 2103, 2218, 2288, 2289, which repeat an earlier row's question, options and label (FAITH's public config keeps them: see the 595) | 587 |
| ``secbench-mcq-eng-reasoning`` | FAITH's ``secbench-mcqa-eng-reasoning``: 43 fixed rows, the English logical-reasoning (ability 逻辑推理) rows that pass the 595 filters | 43 |
| ``secbench-mcq-eng-dedup`` | earlier secfoundry subset: English, no CJK character or CJK punctuation/full-width form in the question, one label among A-D with four options, then question+options duplicates (case/space-insensitive) dropped | 581 |

FAITH strips the question and the label; so does every subset here. The two variants (-595,
-dedup) run only when named: the ``quickstart``, ``all`` and ``secbench`` groups leave them out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from secfoundry.core.errors import InputError
from secfoundry.eval import parsing
from secfoundry.eval.benchmarks import register
from secfoundry.eval.benchmarks._io import need_letter, need_str, read_jsonl
from secfoundry.eval.benchmarks.base import MCQTask
from secfoundry.eval.task import Item

LETTERS = "ABCDEFGH"
# FAITH's filter: CJK unified ideographs only (U+4E00-U+9FFF).
CJK_IDEOGRAPH = re.compile(r"[\u4e00-\u9fff]")
# The wider set of the earlier -dedup subset: ideographs, kana, hangul, CJK punctuation, full-width forms.
CJK = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_LANG = {"en": "English", "english": "English", "zh": "Chinese", "cn": "Chinese", "chinese": "Chinese"}

# Rows FAITH's 587-item set leaves out of the 595: each repeats an earlier row exactly
# (question, options, label). Row 1106 repeats row 1088's question and options with another
# label (D vs B) and is kept.
FAITH_DROPPED_ROWS = (224, 825, 1152, 2038, 2103, 2218, 2288, 2289)
# FAITH's secbench-mcqa-eng-reasoning (its dataframe_transform_expr selects these rows by iloc).
FAITH_REASONING_ROWS = (167, 352, 452, 544, 568, 704, 744, 747, 753, 757, 809, 816, 839, 851, 855, 861, 869, 883,
                        895, 984, 1087, 1098, 1103, 1122, 1179, 1257, 1340, 1402, 1435, 1631, 1820, 1834, 1839,
                        1868, 1983, 2016, 2080, 2093, 2108, 2120, 2290, 2454, 2602)


def _norm(s: str) -> str:
    return " ".join(str(s).split()).casefold()


def faith_eligible(it: Item) -> bool:
    """FAITH's row filter: English, no CJK ideograph in the question, one label among A-D."""
    return (it.meta.get("language") == "English" and not CJK_IDEOGRAPH.search(it.question)
            and len(it.gold) == 1 and it.gold in "ABCD")


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
            items.append(Item(str(i - 1), question.strip(), "".join(sorted(set(label))), options,
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


class _SecBenchEnglish(SecBenchMCQ):
    """Single-answer English subsets (A-D): one letter per answer."""

    kind = "mcq"
    multi = False
    letters = "ABCD"
    option_names = ()

    def official_parse(self, text: str | None) -> str | None:
        return parsing.letter_lenient(text, None, "ABCD")


@register("secbench-mcq-eng-595")
class SecBenchMCQEng595(_SecBenchEnglish):
    name = "secbench-mcq-eng-595"
    title = "SecBench MCQ (English, FAITH's published filter, 595)"
    variant_of = "secbench-mcq-eng"  # run by name only, not by the quickstart/all/family groups

    def select(self, items: list[Item]) -> list[Item]:
        return [it for it in items if faith_eligible(it)]


@register("secbench-mcq-eng")
class SecBenchMCQEng(_SecBenchEnglish):
    name = "secbench-mcq-eng"
    title = "SecBench MCQ (English, FAITH subset)"

    def select(self, items: list[Item]) -> list[Item]:
        drop = {str(r) for r in FAITH_DROPPED_ROWS}
        return [it for it in items if faith_eligible(it) and it.id not in drop]


@register("secbench-mcq-eng-reasoning")
class SecBenchMCQEngReasoning(_SecBenchEnglish):
    name = "secbench-mcq-eng-reasoning"
    title = "SecBench MCQ (English logical reasoning, FAITH subset)"

    def select(self, items: list[Item]) -> list[Item]:
        by_id = {it.id: it for it in items}
        missing = [r for r in FAITH_REASONING_ROWS if str(r) not in by_id]
        if missing:
            raise InputError(f"FAITH reasoning rows {missing} are not in the file (a different SecBench version?)",
                             field="secbench-mcq-eng-reasoning")
        out = [by_id[str(r)] for r in FAITH_REASONING_ROWS]
        bad = [it.id for it in out if not faith_eligible(it)]
        if bad:
            raise InputError(f"FAITH reasoning rows {bad} are not English single-answer A-D questions here "
                             "(a different SecBench version?)", field="secbench-mcq-eng-reasoning")
        return out


@register("secbench-mcq-eng-dedup")
class SecBenchMCQEngDedup(_SecBenchEnglish):
    name = "secbench-mcq-eng-dedup"
    title = "SecBench MCQ (English, deduplicated)"
    variant_of = "secbench-mcq-eng"

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
