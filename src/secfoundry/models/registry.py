"""``load_model(spec, **options)``: one entry point for every backend.

Backends are imported lazily so that ``secfoundry --help`` and spec parsing stay cheap, and so
that a missing optional dependency (llama-cpp-python) only matters when it is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secfoundry.models.base import LanguageModel
from secfoundry.models.spec import EMBEDDED_ALIAS, ModelSpec, ModelSpecError, parse_spec

# options each backend understands; anything else is a typo and is refused with the list
_HF_OPTIONS = {"dtype", "threads", "batch_size", "prefix_cache", "prefix_cache_size", "device",
               "max_length", "trust_remote_code", "revision", "prefix_attention"}
_OPENAI_OPTIONS = {"api_key", "max_concurrency", "timeout", "max_retries", "backoff", "top_logprobs",
                   "chat", "headers", "max_backoff"}
_LLAMACPP_OPTIONS = {"threads", "n_ctx", "batch_size", "n_batch", "seed", "chat_format", "verbose", "repack"}


def _check(spec: str, options: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    opts = {k: v for k, v in options.items() if v is not None}
    bad = sorted(set(opts) - allowed)
    if bad:
        raise ModelSpecError(spec, f"unknown option(s) {bad} for this backend (known: {sorted(allowed)})")
    return opts


def load_model(spec: str, **options: Any) -> LanguageModel:
    """Load a model from a spec string (see ``secfoundry.models.spec``).

    Options set to None are ignored, so CLI flags can be passed straight through.
    """
    ms = parse_spec(spec)
    if ms.backend == "embedded":
        return _load_embedded(ms, options)
    if ms.backend == "hf":
        return _load_hf(ms, options)
    if ms.backend == "openai":
        from secfoundry.models.openai_compat import OpenAIModel

        opts = _check(ms.spec, options, _OPENAI_OPTIONS)
        return OpenAIModel(ms.target, ms.model_name or "", spec=ms.spec, **opts)
    if ms.backend == "llamacpp":
        opts = _check(ms.spec, options, _LLAMACPP_OPTIONS)
        path = Path(ms.target).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{ms.spec}: GGUF file {path} does not exist")
        from secfoundry.models.llamacpp import LlamaCppModel

        return LlamaCppModel(path, spec=ms.spec, **opts)
    raise ModelSpecError(spec, f"unsupported backend {ms.backend!r}")  # pragma: no cover


def _load_embedded(ms: ModelSpec, options: dict[str, Any]):
    from secfoundry.models.embedded import EMBEDDED_NAME, ensure_converted, read_manifest
    from secfoundry.models.hf import HFModel

    opts = _check(ms.spec, options, _HF_OPTIONS - {"revision", "trust_remote_code"})
    path = ensure_converted()
    man = read_manifest(path)
    return HFModel(path, spec=EMBEDDED_ALIAS, weights_sha256=man.get("weights_sha256"),
                   extra_describe={"embedded": EMBEDDED_NAME, "gguf_sha256": man.get("gguf_sha256"),
                                   "source": man.get("source")}, **opts)


def _load_hf(ms: ModelSpec, options: dict[str, Any]):
    from secfoundry.models.hf import HFModel

    opts = _check(ms.spec, options, _HF_OPTIONS)
    if ms.revision and "revision" not in opts:
        opts["revision"] = ms.revision
    target = Path(ms.target).expanduser()
    if ms.is_gguf:
        if not target.is_file():
            raise FileNotFoundError(f"{ms.spec}: GGUF file {target} does not exist")
        return HFModel(target.parent, spec=ms.spec, gguf_file=target.name, **opts)
    if ms.is_local or target.is_dir():
        if not target.is_dir():
            raise FileNotFoundError(f"{ms.spec}: model directory {target} does not exist")
        return HFModel(target, spec=ms.spec, **opts)
    return HFModel(ms.target, spec=ms.spec, **opts)  # hub id
