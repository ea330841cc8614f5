"""The map-cwe and predict-cvss adapters of the ``system:`` backend (see ``system``).

The item's description is the text after the last ``CVE Description:`` marker of the prompt
(CTIBench's official prompt ends with it; the FAITH few-shot form repeats it once per shot and
ends with ``CWE:`` / ``CVSS v3.1 vector:``, which is cut). A prompt without the marker is used
whole. Nothing else in the prompt is read.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from secfoundry.apps.intel.cve_index import Exclusion
from secfoundry.apps.intel.schemas import MAX_TEXT_CHARS, CveInput

_MARKER = re.compile(r"CVE\s+Description\s*:", re.I)
_ANSWER_TAIL = re.compile(r"\n\s*(CWE|CVSS v3\.1 vector|Answer)\s*:\s*$", re.I)


def description_from_prompt(text: str) -> str:
    hits = list(_MARKER.finditer(text or ""))
    body = text[hits[-1].end():] if hits else (text or "")
    body = _ANSWER_TAIL.sub("", body.rstrip())
    return body.strip()[:MAX_TEXT_CHARS] or "(empty)"


class _Base:
    app = ""

    def __init__(self, options: dict[str, str]):
        self.options = options
        self.llm = options.get("llm")
        self.items = 0
        self.excluded = 0

    def _inputs(self, texts: list[str]) -> tuple[list[CveInput], list[Exclusion]]:
        descs = [description_from_prompt(t) for t in texts]
        return ([CveInput(description=d) for d in descs], [Exclusion.for_item(None, d) for d in descs])

    def _answer(self, texts: list[str], run: Callable[..., list[Any]], pick: Callable[[Any], str]) -> list[str]:
        """Run ``run(items, exclusions)`` on the prompts' descriptions, count items and excluded
        index rows, and return ``pick(result)`` per item."""
        items, excl = self._inputs(texts)
        res = run(items, excl)
        self.items += len(res)
        self.excluded += sum(r.excluded for r in res)
        return [pick(r) for r in res]

    def describe(self) -> dict[str, Any]:
        return {"system_app": self.app, "llm": self.llm, "items": self.items,
                "index_rows_excluded": self.excluded, **getattr(self, "_manifest", {})}


class CweAdapter(_Base):
    app = "map-cwe"

    def __init__(self, options: dict[str, str]):
        super().__init__(options)
        from secfoundry.apps.intel.cwe_map import CweMapper

        self.mapper = CweMapper(llm=self.llm, kb_path=options.get("kb"), records=options.get("records"),
                                level=options.get("level", "nvd"), dense=options.get("dense", "1") != "0")
        self._manifest = {"intel_model": self.mapper.model.manifest, "dense": self.mapper.dense is not None}

    def answer(self, texts: list[str]) -> list[str]:
        return self._answer(texts, self.mapper.map_many, lambda r: r.cwe[0] if r.cwe else "NVD-CWE-noinfo")


class CvssAdapter(_Base):
    app = "predict-cvss"

    def __init__(self, options: dict[str, str]):
        super().__init__(options)
        if self.llm:
            raise ValueError("system:predict-cvss has no LLM option (the vector comes from the learned models)")
        from secfoundry.apps.intel.cvss_predict import CvssPredictor

        # ``?convention=adp``: CISA-ADP's scoring offsets (cvss_convention; default cna, as learned)
        self.predictor = CvssPredictor(kb_path=options.get("kb"), records=options.get("records"),
                                       convention=options.get("convention", "cna"))
        self._manifest = {"intel_model": self.predictor.model.manifest, "convention": self.predictor.convention}

    def answer(self, texts: list[str]) -> list[str]:
        return self._answer(texts, self.predictor.predict_many, lambda r: r.vector)


def make_cwe_adapter(options: dict[str, str]) -> CweAdapter:
    return CweAdapter(options)


def make_cvss_adapter(options: dict[str, str]) -> CvssAdapter:
    return CvssAdapter(options)
