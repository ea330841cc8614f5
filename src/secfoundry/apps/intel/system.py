"""``system:NAME[?llm=SPEC]``: an application scored by the eval harness as if it were a model.

    secfoundry eval run --model system:map-cwe --benchmark ctibench-rcm,ctibench-rcm-2021 --protocol official
    secfoundry eval run --model 'system:map-cwe?llm=smollm2-135m-instruct' --benchmark ctibench-rcm
    secfoundry eval run --model system:predict-cvss --benchmark ctibench-vsp

``SystemModel`` is a ``LanguageModel`` whose ``generate`` hands each prompt to an app adapter:
the adapter finds the item's input in the benchmark prompt (e.g. the text after the last
"CVE Description:"), runs the application and writes the answer the benchmark parser expects
(``CWE-79``; ``CVSS:3.1/AV:N/...``). The prompt's instructions are never followed: only the
delimited input is read, so the result equals the app's own output for that text.

Registration: ``secfoundry/cli/__init__.py`` calls
``register_lazy_backend("system", "secfoundry.apps.intel.system")``, so ``load_model`` imports
this module on the first ``system:`` spec (``models`` never imports ``apps``); Python callers
import this module (or call ``load_system_model``) first.

Adding an app (e.g. engineer I2's extract-ttps)
-----------------------------------------------
1. Write ``make_adapter(options: dict[str, str]) -> SystemAdapter`` in your module: an object
   with ``answer(texts: list[str]) -> list[str]`` (one answer per prompt text, the whole user
   prompt incl. any few-shot block) and ``describe() -> dict`` (recorded in the run config).
2. Add one line to ``ADAPTERS`` below: ``"extract-ttps": "secfoundry.apps.intel.ttps_system:make_adapter"``.
Options come from the spec's query string: ``system:NAME?level=cna&llm=SPEC`` (map-cwe:
``level`` nvd|cna, ``dense`` 1|0, ``llm``; predict-cvss: ``convention`` cna|adp; both: ``records``, ``kb``) (``llm`` takes the rest
of the string when it is last, so OpenAI specs with ``#model`` work).

Leakage: each adapter applies the leakage rule per item (``cve_index.Exclusion``); the fitted
model is decontaminated from CTIBench by CVE id and description (see ``fitted``); ``describe()``
reports how many index rows were excluded.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Protocol, Sequence

from secfoundry.models.base import Capabilities, GenerationConfig, LanguageModel, Prompt
from secfoundry.models.registry import register_backend
from secfoundry.models.spec import ModelSpec

ADAPTERS: dict[str, str] = {
    "map-cwe": "secfoundry.apps.intel.system_adapters:make_cwe_adapter",
    "predict-cvss": "secfoundry.apps.intel.system_adapters:make_cvss_adapter",
    "extract-ttps": "secfoundry.apps.intel.ttps_system:make_adapter",
}
PREFIX = "system:"


class SystemAdapter(Protocol):
    def answer(self, texts: list[str]) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


class SystemSpecError(ValueError):
    pass


def parse_system_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``system:NAME?k=v&llm=SPEC`` -> (NAME, options)."""
    if not spec.startswith(PREFIX):
        raise SystemSpecError(f"bad system spec {spec!r}: expected 'system:NAME[?llm=SPEC]'")
    body = spec[len(PREFIX):]
    name, _, query = body.partition("?")
    if name not in ADAPTERS:
        raise SystemSpecError(f"unknown system app {name!r} in {spec!r}; known: {', '.join(sorted(ADAPTERS))}")
    opts: dict[str, str] = {}
    while query:
        m = re.match(r"([a-z_]+)=", query)
        if not m:
            raise SystemSpecError(f"bad option {query!r} in {spec!r}: expected key=value")
        key, rest = m.group(1), query[m.end():]
        if key == "llm":  # a model spec may contain '&' or '?': take the rest of the string
            nxt = re.search(r"&(?=(?:k|top|records|kb|level|dense|convention)=)", rest)
            val, query = (rest[:nxt.start()], rest[nxt.end():]) if nxt else (rest, "")
        else:
            val, _, query = rest.partition("&")
        if not val:
            raise SystemSpecError(f"option {key!r} has no value in {spec!r}")
        opts[key] = val
    return name, opts


def _prompt_text(p: Prompt) -> str:
    if isinstance(p, str):
        return p
    users = [m.get("content", "") for m in p if m.get("role") == "user"]
    return users[-1] if users else ""


class SystemModel(LanguageModel):
    """An application behind the ``LanguageModel`` interface (generation only)."""

    def __init__(self, spec: str, adapter: SystemAdapter):
        self.spec = spec
        self.adapter = adapter

    @property
    def capabilities(self) -> Capabilities:
        # chat_template=True: the harness sends the benchmark's instruct (zero-shot) prompt
        return Capabilities(generate=True, chat_template=True)

    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig | None = None) -> list[str]:
        return self.adapter.answer([_prompt_text(p) for p in prompts])

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "backend": "SystemModel", **self.adapter.describe()}


def load_system_model(spec: str, **options: Any) -> SystemModel:
    """Build the model for a ``system:`` spec."""
    name, opts = parse_system_spec(spec)
    module, _, fn = ADAPTERS[name].partition(":")
    factory = getattr(importlib.import_module(module), fn)
    return SystemModel(spec, factory(opts))


@register_backend("system", options={"threads", "batch_size"})
def _load(ms: ModelSpec, **options: Any) -> SystemModel:
    """The models registry's loader (``register_lazy_backend("system", __name__)`` in the CLI)."""
    return load_system_model(ms.spec)
