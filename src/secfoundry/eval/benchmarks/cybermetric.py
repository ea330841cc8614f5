"""CyberMetric (Tihanyi et al., 2024): 80 / 500 / 2000 / 10000 four-option questions.

JSON ``{"questions": [{"question", "answers": {"A".."D"}, "solution"}]}``. Official protocol
(the authors' evaluator): system "You are a security expert who answers questions.", the
question with options inline, "Always return in this format: 'ANSWER: X'", the first
``ANSWER:? X`` (any case) is the answer, accuracy over all questions (no answer = wrong).
Foundation-Sec reports the 500 set.
"""

from __future__ import annotations

from pathlib import Path

from secfoundry.core.errors import InputError
from secfoundry.eval import parsing
from secfoundry.eval.benchmarks import register
from secfoundry.eval.benchmarks._io import json_objects, need_letter, need_str, read_json
from secfoundry.eval.benchmarks.base import MCQTask
from secfoundry.eval.task import Item

SYSTEM = "You are a security expert who answers questions."


class _CyberMetric(MCQTask):
    family = "cybermetric"
    license = "none stated upstream"
    url = "https://github.com/cybermetric/CyberMetric"
    official_system = SYSTEM
    official_tokens = 256
    size = 0

    @property
    def key(self) -> str:
        return f"cybermetric-{self.size}"

    @property
    def data_files(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.key,)

    def load(self, data_dir: Path | None = None) -> list[Item]:
        path = self.path(self.key, data_dir)
        doc = read_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("questions"), list):
            raise InputError('expected {"questions": [...]}', file=str(path), field="questions")
        items = []
        for i, row, q in json_objects(path, doc["questions"], "questions"):
            question = need_str(q, "question", path, row)
            answers = q.get("answers")
            if not isinstance(answers, dict) or not answers:
                raise InputError("expected an object of letter -> option", file=str(path), row=row, field="answers")
            letters = "".join(answers)
            for k, v in answers.items():
                if len(k) != 1 or k not in "ABCDEFGH" or not isinstance(v, str):
                    raise InputError(f"bad option {k!r}", file=str(path), row=row, field="answers")
            gold = need_letter(need_str(q, "solution", path, row), letters, path, row, "solution")
            items.append(Item(str(i), question, gold, dict(answers)))
        return items

    def official_prompt(self, item: Item) -> tuple[str | None, str]:
        options = ", ".join(f"{k}) {v}" for k, v in item.options.items())
        return SYSTEM, (f"Question: {item.question}\nOptions: {options}\n\n"
                        "Choose the correct answer (A, B, C, or D) only. Always return in this format: 'ANSWER: X' ")

    def official_parse(self, text: str | None) -> str | None:
        return parsing.cybermetric_letter(text)


def _make(size: int) -> type[_CyberMetric]:
    cls = type(f"CyberMetric{size}", (_CyberMetric,), {"name": f"cybermetric-{size}", "size": size,
                                                        "title": f"CyberMetric-{size}"})
    return register(f"cybermetric-{size}")(cls)  # type: ignore[return-value]


CyberMetric80 = _make(80)
CyberMetric500 = _make(500)
CyberMetric2000 = _make(2000)
CyberMetric10000 = _make(10000)
