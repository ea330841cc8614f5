"""SecEval (Xuanwu Lab, 2023; CC BY-NC-SA 4.0): 2,189 questions, one or more correct letters.

JSON list of ``{id, source, question, choices: ["A: ...", ...], answer: "B" | "AC" ..., topics,
keyword}``. Upstream oddities kept as published: 7 items have an empty answer and 2 have "AA"
(neither can be matched by a letter set).

Official protocol (the authors' eval.py): instruction below; base models get their fixed
5-shot text block, chat models one example exchange; the question is "Question: " + question +
choices joined by spaces, newlines flattened; the answer is the sorted set of A-D capitals in
the output (after removing "Answer:") and must equal the gold string; accuracy over all items.

``seceval`` is all 2,189 items (multi-letter, so FAITH uses "Answer: $LETTERS");
``seceval-single`` keeps the 1,255 items with exactly one correct letter (no item has an empty
question or option), which is what letter log-probability scoring can measure.
"""

from __future__ import annotations

import re
from pathlib import Path

from secfoundry.core.errors import InputError
from secfoundry.eval import parsing
from secfoundry.eval.benchmarks import register
from secfoundry.eval.benchmarks._io import json_objects, need_str, read_json
from secfoundry.eval.benchmarks.base import MCQTask
from secfoundry.eval.task import Item, Protocol

INSTRUCTION = ("Below are multiple-choice questions concerning cybersecurity. Please select the correct answers "
               "and respond with the letters ABCD only.")
# The authors' base-model few-shot block (five solved multi-answer questions, as published,
# trailing spaces included): part of the official prompt, so reproduced exactly.
_FEWSHOT = [
    ("You are reviewing a piece of code to identify potential vulnerabilities related to NULL pointer "
     "dereferences. Which of the following strategies should you consider implementing to mitigate the risk? "
     "Choose all that apply. A: Use a programming language that inherently manages pointers and prevents direct "
     "memory access. B: Apply input validation to all variables and data stores that receive data from external "
     "sources to ensure they are initialized to expected values. C: Explicitly initialize all variables and other "
     "data stores, either during declaration or just before the first usage. D: Implement a custom memory "
     "management system that automatically assigns a unique identifier to each pointer.", "ABC "),
    ("Analyze the code snippet provided. Which of the following practices should be implemented in a "
     "multithreaded application to prevent NULL pointer dereference vulnerabilities? Select all that apply."
     "A: Ensure that proper locking APIs are used to lock the pointer before the if statement and unlock when it "
     "has finished to prevent race conditions. B: Check the return value of all functions that return a value, "
     "including network-related functions, and verify that it is non-null before using it.C: Use automated static "
     "analysis tools that target this type of weakness, understanding that while not perfect, they can still be "
     "effective.D: Verify that a non-nil 'response' is present before deferring 'response.Body.Close()' to handle "
     "cases where the 'Do' method returns an error.", "ABCD "),
    ("In a bank management application, a method called `createBankAccount` allows the creation of bank accounts "
     "without user identity verification or authority checks. Based on common security practices, which of the "
     "following measures would improve security?A: Implement a centralized authentication mechanism for operations "
     "that require a proven user identity.B: Duplicate client-side authentication checks on the server side to "
     "prevent bypassing of security checks.C: Use a vetted library or framework that offers robust authentication "
     "capabilities to prevent security weaknesses.D: Apply strong authentication requirements for all users "
     "accessing data stored in the cloud.", "ABCD"),
    ("What are the potential consequences if an application handling sensitive data does not require "
     "authentication for data access, and what are the appropriate mitigation strategies?A: Attackers could easily "
     "access sensitive data from any location; require strong authentication for data access using cloud provider "
     "controls.B: Security checks might be bypassed if only performed on the client side; implement checks on both "
     "client and server sides.C: Unauthenticated users could alter product functionality; do not use "
     "authentication for critical functionality in products.D: Sensitive data may be accessed without proper "
     "credentials; utilize authentication capabilities provided by the framework or operating system.", "ABD"),
    ("To prevent security vulnerabilities related to deserialization of untrusted data in a Java application, "
     "which of the following practices should a developer implement?A: Use the signing/sealing features of the "
     "programming language to assure that deserialized data has not been tainted.B: Explicitly define a final "
     "readObject() method to throw an exception and prevent deserialization.C: Populate a new object by "
     "deserializing data to ensure data flows through safe input validation functions.D: Make fields transient to "
     "protect them from deserialization and prevent carrying over sensitive variables.", "ABCD"),
]
FEWSHOT_BLOCK = "\n" + "".join(f"Question: {q}\nAnswer: {a}\n" for q, a in _FEWSHOT)

_CHOICE = re.compile(r"^([A-Z]):\s?(.*)$", re.S)


def official_question(item: Item) -> str:
    choices = " ".join(f"{k}: {v}" for k, v in item.options.items())
    return ("Question: " + item.question + choices).replace("\n", " ")


@register("seceval")
class SecEval(MCQTask):
    name = "seceval"
    family = "seceval"
    kind = "multi-mcq"
    multi = True
    title = "SecEval"
    license = "CC BY-NC-SA 4.0"
    url = "https://github.com/XuanwuAI/SecEval"
    data_files = ("seceval",)
    official_system = INSTRUCTION
    official_tokens = 5  # the authors' base-model setting (their parser reads every A-D capital)

    def load(self, data_dir: Path | None = None) -> list[Item]:
        path = self.path("seceval", data_dir)
        doc = read_json(path)
        items = []
        for i, row, q in json_objects(path, doc):
            question = need_str(q, "question", path, row)
            choices = q.get("choices")
            if not isinstance(choices, list) or not choices:
                raise InputError("expected a list of 'X: text' strings", file=str(path), row=row, field="choices")
            options = {}
            for c in choices:
                m = _CHOICE.match(c) if isinstance(c, str) else None
                if not m:
                    raise InputError(f"choice {c!r} is not 'X: text'", file=str(path), row=row, field="choices")
                options[m.group(1)] = m.group(2)
            answer = need_str(q, "answer", path, row, allow_empty=True).strip().upper()
            if any(c not in options for c in answer):
                raise InputError(f"answer {answer!r} names a missing choice", file=str(path), row=row, field="answer")
            items.append(Item(str(q.get("id") or i), question, answer, options,
                              meta={"source": q.get("source", ""), "topics": q.get("topics", []),
                                    "keyword": q.get("keyword", "")}))
        return self.select(items)

    def select(self, items: list[Item]) -> list[Item]:
        return items

    def official_prompt(self, item: Item) -> tuple[str | None, str]:
        return INSTRUCTION, official_question(item)

    def official_prefix(self, protocol: Protocol) -> str:
        return INSTRUCTION + FEWSHOT_BLOCK

    def _request(self, item, shown, protocol, trial, prefix):  # type: ignore[no-untyped-def]
        req = super()._request(item, shown, protocol, trial, prefix)
        if protocol.name == "official" and protocol.mode != "logprob":
            shown_item = self._shown_item(item, shown)
            if protocol.instruct and req.gen is not None and not protocol.max_new_tokens:
                req.gen.max_new_tokens = 32  # chat answers "Answer: AC"; long reasoning would add stray letters
            if protocol.instruct:
                req.prompt = [{"role": "system", "content": INSTRUCTION},
                              {"role": "user", "content": "Question: What's the capital of China? A: Beijing "
                                                          "B: Shanghai C: Guangzhou D: Shenzhen"},
                              {"role": "assistant", "content": "Answer: A"},
                              {"role": "user", "content": official_question(shown_item)}]
            else:  # instruction + few-shot block is the shared prefix; the question follows
                req.prompt = official_question(shown_item) + "\n"
        return req

    def official_parse(self, text: str | None) -> str | None:
        got = parsing.seceval_letters(text)
        return got or None

    def is_correct(self, item: Item, answer: object) -> bool:
        # Upstream: the parsed letters (lower-cased) equal the answer string (lower-cased).
        return answer is not None and str(answer).lower() == str(item.gold).lower()

    def n_shots(self, protocol: Protocol) -> int:
        if protocol.name == "official":
            return 0  # the official few-shot block is fixed text, not drawn from the set
        return super().n_shots(protocol)


@register("seceval-single")
class SecEvalSingle(SecEval):
    name = "seceval-single"
    kind = "mcq"
    multi = False
    title = "SecEval (single-answer subset)"

    def select(self, items: list[Item]) -> list[Item]:
        return [it for it in items if len(it.gold) == 1 and it.question.strip()
                and all(str(v).strip() for v in it.options.values())]
