"""Benchmark registry: ``get_task("ctibench-mcq")``, ``list_tasks()``.

Options can be given as keyword arguments or in the name: ``"secbench-mcq:language=English"``,
``"mmlu:subjects=computer_security|college_computer_science;split=test"`` (``;`` between
options, ``|`` between list values).
"""

from __future__ import annotations

from typing import Any, Callable

from secfoundry.eval.task import Task

_REGISTRY: dict[str, type[Task]] = {}


def register(name: str) -> Callable[[type[Task]], type[Task]]:
    def deco(cls: type[Task]) -> type[Task]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"benchmark {name!r} registered twice")
        _REGISTRY[name] = cls
        return cls

    return deco


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """"name:key=value;key=a|b" -> (name, {key: value, key: [a, b]})."""
    name, _, rest = spec.strip().partition(":")
    opts: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(";"))):
        key, eq, val = part.partition("=")
        if not eq:
            raise ValueError(f"benchmark option {part!r} in {spec!r} is not key=value")
        opts[key.strip().replace("-", "_")] = val.split("|") if "|" in val else val.strip()
    return name.strip(), opts


def get_task(spec: str, **options: Any) -> Task:
    """A fresh task instance for a benchmark name (with options)."""
    _load_all()
    name, opts = parse_spec(spec)
    opts.update(options)
    if name not in _REGISTRY:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(list_tasks())}")
    return _REGISTRY[name](**opts)  # type: ignore[call-arg]


def list_tasks() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def _load_all() -> None:
    # Imported lazily so that importing the registry stays cheap and cycle-free.
    from secfoundry.eval.benchmarks import ctibench, cybermetric, mmlu, secbench, secbench_saq, seceval  # noqa: F401
