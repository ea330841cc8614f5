"""Model backends and ``load_model(spec, **options)``: one entry point for every backend.

A backend registers its loader with a decorator, in its own module (as benchmarks register with
``eval.benchmarks.register`` and sources with theirs)::

    @register_backend("llamacpp", options={"threads", "n_ctx", ...})
    def load_llamacpp(ms: ModelSpec, **options) -> LanguageModel: ...

``load_model("llamacpp:/m.gguf", n_ctx=4096)`` parses the spec, imports the module that
registers the ``llamacpp`` prefix (``_MODULES``: imported lazily, so ``secfoundry --help`` and
spec parsing stay cheap and a missing optional dependency only matters when it is used),
refuses options the backend does not list, and calls the loader.

Backends from outside ``models`` — e.g. the applications evaluated as models (``system:``,
issue #12) — must not make ``models`` import them (``models`` sits below ``apps`` and ``eval``).
Two ways, both string-based:

* ``register_lazy_backend("system", "secfoundry.apps.system.backend")`` from a layer that may
  know the applications (the CLI: ``secfoundry/cli/__init__.py``); the module is imported on
  the first ``system:...`` spec and registers its loader with ``@register_backend("system")``;
* or import that module yourself (tests, notebooks) before calling ``load_model``.

A registered prefix that is not one of the built-ins gets a plain ``ModelSpec(backend, target)``;
its loader validates the target.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from secfoundry.models.base import LanguageModel
from secfoundry.models.spec import ModelSpec, ModelSpecError, parse_spec

Loader = Callable[..., LanguageModel]


@dataclass(frozen=True)
class Backend:
    name: str  # the spec prefix ("embedded" for the alias)
    load: Loader  # load(ms: ModelSpec, **options) -> LanguageModel
    options: frozenset[str]  # the options it understands; anything else is refused as a typo


_BACKENDS: dict[str, Backend] = {}
# prefix -> module that registers it when imported (built-ins; apps add theirs lazily)
_MODULES: dict[str, str] = {
    "embedded": "secfoundry.models.embedded",
    "hf": "secfoundry.models.hf",
    "openai": "secfoundry.models.openai_compat",
    "llamacpp": "secfoundry.models.llamacpp",
}


def register_backend(name: str, *, options: set[str] | frozenset[str] = frozenset()) -> Callable[[Loader], Loader]:
    """Register ``load(ms, **options)`` for specs ``name:...``."""
    def deco(fn: Loader) -> Loader:
        prev = _BACKENDS.get(name)
        if prev is not None and prev.load is not fn:
            raise ValueError(f"model backend {name!r} registered twice")
        _BACKENDS[name] = Backend(name, fn, frozenset(options))
        return fn

    return deco


def register_lazy_backend(name: str, module: str) -> None:
    """Say which module registers backend ``name``; it is imported on the first such spec."""
    if _MODULES.get(name, module) != module:
        raise ValueError(f"model backend {name!r} is already provided by {_MODULES[name]}")
    _MODULES[name] = module


def known_backends() -> list[str]:
    """Spec prefixes ``load_model`` accepts (registered or lazily registrable)."""
    return sorted((set(_BACKENDS) | set(_MODULES)) - {"embedded"})


def get_backend(name: str) -> Backend:
    if name not in _BACKENDS and name in _MODULES:
        importlib.import_module(_MODULES[name])
    if name not in _BACKENDS:
        raise ModelSpecError(name, f"unsupported backend {name!r} (known: {', '.join(known_backends())})")
    return _BACKENDS[name]


def check_options(spec: str, options: dict[str, Any], allowed: frozenset[str] | set[str]) -> dict[str, Any]:
    """``options`` without the None values; unknown keys are refused with the known ones."""
    opts = {k: v for k, v in options.items() if v is not None}
    bad = sorted(set(opts) - set(allowed))
    if bad:
        raise ModelSpecError(spec, f"unknown option(s) {bad} for this backend (known: {sorted(allowed)})")
    return opts


def load_model(spec: str, **options: Any) -> LanguageModel:
    """Load a model from a spec string (see ``secfoundry.models.spec``).

    Options set to None are ignored, so CLI flags can be passed straight through.
    """
    ms = parse_spec(spec)
    backend = get_backend(ms.backend)
    return backend.load(ms, **check_options(ms.spec, options, backend.options))
