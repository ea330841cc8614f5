"""The extract-ttps adapter of the ``system:`` backend (``system:extract-ttps[?llm=SPEC]``).

The item's text is what the CTIBench-ATE prompt puts between ``**Text:**`` and ``**List of All
MITRE``; a prompt without those markers (FAITH few-shot form: the last ``Text:`` block) is cut at
the last ``Text:`` label. Nothing else in the prompt is read or followed.

Leakage rule (issue #12): ATE items describe an ATT&CK software entry. Every software the text
names (the entry describes itself by name) has its own procedure examples — and any example that
names it — withheld from the sentence model while that item is scored; ``describe()`` reports
the number withheld.

The answer is the reasoning-free form the ATE parser reads: one line of main technique ids
(sub-techniques folded into their parent, as the ATE prompt asks).
"""

from __future__ import annotations

import re
from typing import Any

_TEXT = re.compile(r"\*\*Text:\*\*(.*?)(?:\*\*List of All MITRE|\Z)", re.S)
_LABEL = re.compile(r"(?:^|\n)\s*Text\s*:\s*", re.I)
_TAIL = re.compile(r"\n\s*Techniques\s*:\s*$", re.I)
_DOMAIN = re.compile(r"\bMITRE\s+(Enterprise|Mobile|ICS)\b", re.I)


def domain_from_prompt(prompt: str) -> str | None:
    """The ATT&CK domain the prompt asks for ("Extract all MITRE Mobile attack patterns ...")."""
    m = _DOMAIN.search(prompt or "")
    return m.group(1).lower() if m else None


def text_from_prompt(prompt: str) -> str:
    m = list(_TEXT.finditer(prompt or ""))
    if m:
        return m[-1].group(1).strip()
    hits = list(_LABEL.finditer(prompt or ""))
    body = prompt[hits[-1].end():] if hits else (prompt or "")
    return _TAIL.sub("", body.rstrip()).strip()


_SUBJECT = re.compile(r"^\s*([\w.\-+ ]{1,60}?)\s+(?:is|was|are|has been)\b")


def described_entities(text: str, catalog) -> set[str]:
    """ATT&CK software the text describes by its opening subject ("adbupd is a backdoor ..."),
    matched case-insensitively against names and aliases — names the entity matcher would not
    take on their own (lower-case tool names, common words) still count for leakage control."""
    m = _SUBJECT.match(text or "")
    if not m:
        return set()
    subj = m.group(1).strip().lower()
    return {eid for surface, eid in catalog.entity_names()
            if surface.lower() == subj and catalog.entities[eid].type == "software"}


class TTPAdapter:
    app = "extract-ttps"

    def __init__(self, options: dict[str, str]):
        from secfoundry.apps.intel.ttps import get_extractor

        self.llm = options.get("llm")
        self.min_confidence = float(options.get("min_confidence", 0.5))
        kb = None
        if options.get("kb"):
            from secfoundry.kb.knowledge import KnowledgeBase

            kb = KnowledgeBase.open(options["kb"])
        self.extractor = get_extractor(kb)
        self.items = 0
        self.excluded = 0

    def answer(self, texts: list[str]) -> list[str]:
        from secfoundry.apps.intel.ttps import ExtractOptions

        out = []
        for t in texts:
            body = text_from_prompt(t)
            if not body.strip():
                out.append("")
                continue
            own = tuple(sorted(described_entities(body, self.extractor.catalog)))
            res = self.extractor.extract(body, ExtractOptions(min_confidence=self.min_confidence, exclude_entities=own,
                                                              domain=domain_from_prompt(t.split("**Text:**")[0]),
                                                              exclude_mentioned_software=True, llm=self.llm))
            self.items += 1
            self.excluded += res.excluded_examples
            mains = list(dict.fromkeys(h.id.split(".")[0] for h in res.techniques))
            out.append(", ".join(mains))
        return out

    def describe(self) -> dict[str, Any]:
        return {"system_app": self.app, "llm": self.llm, "items": self.items,
                "procedure_examples_withheld": self.excluded, "attack_version": self.extractor.catalog.version,
                "min_confidence": self.min_confidence}


def make_adapter(options: dict[str, str]) -> TTPAdapter:
    return TTPAdapter(options)
