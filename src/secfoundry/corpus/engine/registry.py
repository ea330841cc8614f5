"""The step registry: resolves the step names recipes use to step classes.

Names resolve through :func:`register_step` (explicit), automatic discovery of classes with a
``name`` and ``run_batch`` in ``secfoundry.corpus.process.*`` and ``secfoundry.corpus.prepare.*``
modules, and ``"package.module:ClassName"`` paths for plugins. The step API itself is
``secfoundry/corpus/step.py``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import pkgutil
import types
import typing
from typing import Any

from secfoundry.core.errors import InputError

log = logging.getLogger(__name__)

DISCOVER_PACKAGES = ("secfoundry.corpus.process", "secfoundry.corpus.prepare")

_REGISTRY: dict[str, type] = {}
_DISCOVERED = False


def register_step(cls: type | None = None, *, name: str | None = None):
    """Class decorator: make a step available to recipes as ``{step: <name>}``."""

    def deco(c: type) -> type:
        key = name or getattr(c, "name", "")
        if not key:
            raise ValueError(f"step class {c.__name__} has no name")
        _REGISTRY[key] = c
        return c

    return deco(cls) if cls is not None else deco


def _is_step_class(obj: Any) -> bool:
    return (inspect.isclass(obj) and isinstance(getattr(obj, "name", None), str)
            and callable(getattr(obj, "run_batch", None)) and not inspect.isabstract(obj)
            and obj.__module__ not in (__name__, "secfoundry.corpus.step"))


_IMPORTED: set[str] = set()


def _candidate_modules() -> list[str]:
    out = []
    for pkg_name in DISCOVER_PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except Exception as e:  # a broken sibling package must not break the engine
            log.warning("step discovery: cannot import %s: %s", pkg_name, e)
            continue
        out += [f"{pkg_name}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)
                if not m.name.startswith(("_", "cli"))]
    return out


def _import_and_register(mod_name: str) -> None:
    if mod_name in _IMPORTED:
        return
    _IMPORTED.add(mod_name)
    try:
        module = importlib.import_module(mod_name)
    except Exception as e:
        log.warning("step discovery: cannot import %s: %s", mod_name, e)
        return
    for _, obj in inspect.getmembers(module, _is_step_class):
        if obj.__module__ != module.__name__:
            continue  # re-exported from elsewhere; registered by its own module
        key = obj.name
        if key in ("step", "global", "") or key in _REGISTRY:
            continue  # base classes and explicit registrations win
        _REGISTRY[key] = obj


def _discover(name: str | None = None) -> None:
    """Register step classes from the process/prepare modules. With ``name``, modules whose file
    name shares a word with it are tried first, so a worker imports only what it needs (some
    steps pull in heavy libraries)."""
    global _DISCOVERED
    import secfoundry.corpus.engine.builtin_steps  # noqa: F401  (registers itself)

    if name is not None and name in _REGISTRY:
        return
    mods = _candidate_modules()
    if name is not None:
        words = set(name.lower().replace("-", "_").split("_"))
        for m in mods:
            if words & set(m.rsplit(".", 1)[1].split("_")):
                _import_and_register(m)
        if name in _REGISTRY:
            return
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for m in mods:
        _import_and_register(m)


def available_steps() -> dict[str, type]:
    _discover()
    return dict(sorted(_REGISTRY.items()))


def resolve_step_class(name: str) -> type:
    if ":" in name:  # "package.module:ClassName"
        mod_name, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise InputError(f"cannot import step {name!r}: {e}", field="step") from e
    if name in _REGISTRY:
        return _REGISTRY[name]
    _discover(name)
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise InputError(f"unknown step {name!r}; known steps: {known}", field="step")
    return _REGISTRY[name]


def config_class(step_cls: type) -> type | None:
    """The dataclass a step is configured with: ``Config``/``config_class`` attribute, else the
    annotation of the first ``__init__`` parameter (``def __init__(self, config: XConfig | None)``)."""
    for attr in ("config_class", "Config"):
        c = getattr(step_cls, attr, None)
        if inspect.isclass(c) and dataclasses.is_dataclass(c):
            return c
    try:
        hints = typing.get_type_hints(step_cls.__init__)
    except Exception:
        return None
    params = [p for p in inspect.signature(step_cls.__init__).parameters.values() if p.name != "self"]
    if not params:
        return None
    ann = hints.get(params[0].name)
    candidates = typing.get_args(ann) if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union else (ann,)
    for c in candidates:
        if inspect.isclass(c) and dataclasses.is_dataclass(c):
            return c
    return None


def build_config(cfg_cls: type, options: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for {cfg_cls.__name__}; valid: {sorted(names)}",
                         field=where)
    return cfg_cls(**options)


def build_step(name: str, options: dict[str, Any] | None = None) -> Any:
    """Instantiate a step from its registry name and recipe options."""
    cls = resolve_step_class(name)
    options = dict(options or {})
    cfg_cls = config_class(cls)
    if cfg_cls is not None:
        return cls(build_config(cfg_cls, options, f"steps.{name}"))
    if options:
        return cls(**options)
    return cls()
