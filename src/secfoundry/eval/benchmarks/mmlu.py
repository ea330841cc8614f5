"""MMLU (Hendrycks et al., 2021), from a user-provided copy in the standard CSV layout.

``<data>/mmlu/{dev,val,test}/<subject>_{dev,val,test}.csv``, no header, columns: question, A, B,
C, D, answer. Options: ``subjects=computer_security|college_computer_science`` (default: every
subject found), ``split=test`` (default). Used for general-knowledge retention checks.

Official protocol (and FAITH for base models and logprob mode; FAITH instruct models are asked
zero-shot): the original 5-shot prompt — "The following are multiple choice questions
(with answers) about <subject>." then the subject's first five dev questions, each
"question\\nA. ..\\nAnswer: X" — with the answer read from the first letter generated (or
letter log-probabilities in ``--mode logprob``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from secfoundry.core import paths
from secfoundry.core.errors import InputError
from secfoundry.eval import parsing
from secfoundry.eval import protocols as P
from secfoundry.eval.benchmarks import register
from secfoundry.eval.benchmarks.base import BASE_ANSWER_TOKENS, MCQTask
from secfoundry.eval.task import Item, Protocol, Request


def _pretty(subject: str) -> str:
    return subject.replace("_", " ")


def read_mmlu_csv(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read ({e})", file=str(path)) from e
    rows = []
    for i, rec in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not rec or all(not c.strip() for c in rec):
            continue
        if len(rec) != 6:
            raise InputError(f"has {len(rec)} fields, expected 6 (question, A, B, C, D, answer)",
                             file=str(path), row=i, field="answer" if len(rec) < 6 else "<extra>")
        if rec[5].strip().upper() not in ("A", "B", "C", "D"):
            raise InputError(f"answer {rec[5]!r} is not A-D", file=str(path), row=i, field="answer")
        if not rec[0].strip():
            raise InputError("empty value", file=str(path), row=i, field="question")
        rows.append(rec)
    return rows


@register("mmlu")
class MMLU(MCQTask):
    name = "mmlu"
    family = "mmlu"
    title = "MMLU"
    license = "MIT"
    url = "https://github.com/hendrycks/test"
    option_names = ("subjects", "split")
    official_tokens = BASE_ANSWER_TOKENS

    def root(self, data_dir: Path | str | None) -> Path:
        base = paths.benchmark_data_dir(data_dir)
        root = Path(base) / "mmlu" if base is not None else None
        if root is None or not root.is_dir():
            raise InputError("MMLU is not bundled: put a copy in <data-dir>/mmlu/{dev,val,test}/<subject>_<split>.csv "
                             "(the standard Hendrycks CSV layout) and pass --data-dir",
                             file=str(root) if root else "<data-dir>/mmlu")
        return root

    def subjects(self, root: Path, split: str) -> list[str]:
        want = self.options.get("subjects")
        if isinstance(want, str):
            want = [w for w in want.replace(",", "|").split("|") if w]
        found = sorted(p.name[: -len(f"_{split}.csv")] for p in (root / split).glob(f"*_{split}.csv"))
        if want:
            missing = [w for w in want if w not in found]
            if missing:
                raise InputError(f"subject(s) {missing} not found (have {len(found)})", file=str(root / split))
            return list(want)
        return found

    def load(self, data_dir: Path | None = None) -> list[Item]:
        root = self.root(data_dir)
        split = str(self.options.get("split", "test"))
        self._dev: dict[str, list[Item]] = {}
        items = []
        for subject in self.subjects(root, split):
            for j, rec in enumerate(read_mmlu_csv(root / split / f"{subject}_{split}.csv")):
                items.append(Item(f"{subject}/{j}", rec[0], rec[5].strip().upper(), dict(zip("ABCD", rec[1:5])),
                                  meta={"subject": subject}))
            dev_path = root / "dev" / f"{subject}_dev.csv"
            if dev_path.is_file():
                self._dev[subject] = [Item(f"{subject}/dev{j}", r[0], r[5].strip().upper(),
                                           dict(zip("ABCD", r[1:5])), meta={"subject": subject})
                                      for j, r in enumerate(read_mmlu_csv(dev_path))]
        return items

    def official_header(self, subject: str) -> str:
        return f"The following are multiple choice questions (with answers) about {_pretty(subject)}.\n\n"

    def official_prefix_for(self, subject: str, k: int = 5) -> str:
        dev = getattr(self, "_dev", {}).get(subject, [])[:k]
        return P.fewshot_prefix([P.mcq_block(d.question, d.options, d.gold) for d in dev], self.official_header(subject))

    def n_shots(self, protocol: Protocol) -> int:
        return 0  # shots come from each subject's dev split, never from the scored items

    def _request(self, item: Item, shown: dict[str, str], protocol: Protocol, trial: int, prefix: str) -> Request:
        if protocol.name == "faith" and protocol.instruct and protocol.mode != "logprob" and not protocol.shots:
            return super()._request(item, shown, protocol, trial, prefix)  # zero-shot chat, "Answer: $LETTER"
        # MMLU's own k-shot layout (official, and FAITH for base models / logprob): per-subject
        # header + the subject's first k dev questions as the shared prefix (one per subject).
        subj_prefix = self.official_prefix_for(item.meta["subject"], 5 if protocol.shots is None else protocol.shots)
        text = P.mcq_block(item.question, shown)
        if protocol.mode == "logprob":
            letters = list(shown)
            return Request(item.id, "choice", text, prefix=subj_prefix, choices=[" " + k for k in letters],
                           choice_labels=letters)
        return Request(item.id, "generate", text, prefix=subj_prefix,
                       gen=self.gen(protocol, BASE_ANSWER_TOKENS, ["\n"], trial=trial))

    def official_parse(self, text: str | None) -> str | None:
        return parsing.first_letter(text) or parsing.letter_lenient(text)

    def official_prompt(self, item: Item) -> tuple[str | None, str]:
        return None, self.official_header(item.meta["subject"]) + P.mcq_block(item.question, item.options)
