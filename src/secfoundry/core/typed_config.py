"""Typed dataclass configs loaded from YAML, dicts and ``a.b=value`` overrides (litgpt style).

One loader for every stage config (``train.config.TrainConfig``, ``eval.config.RunConfig``,
``experiment.config.ReplicateConfig``); the CLI binds the same dataclasses to flags
(``cli/_config.py``), so a run is described by one object whether it came from YAML or flags.

Unknown keys are refused with the known ones; scalars are coerced to the field's declared type
(YAML 1.1 reads ``2e-5`` as a string; paths come in as strings); nested dataclasses are built
from nested mappings.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def apply_override(d: dict[str, Any], override: str) -> None:
    """Apply ``a.b=value`` (value parsed as YAML) to a nested dict in place."""
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like key.sub=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    cur = d
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = yaml.safe_load(raw)


def read_yaml(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """A YAML mapping (empty file: {}) with ``overrides`` applied."""
    d = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a mapping at the top, got {type(d).__name__}")
    for ov in overrides or []:
        apply_override(d, ov)
    return d


def build(cls: type[T], d: dict[str, Any], where: str = "config") -> T:
    """``cls(**d)`` with nested dataclasses built and scalars coerced to the declared types."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(fields)}")
    kwargs = {}
    for name, val in d.items():
        f = fields[name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if sub is not None and dataclasses.is_dataclass(sub) and isinstance(val, dict):
            kwargs[name] = build(sub, val, f"{where}.{name}")
        else:
            kwargs[name] = coerce(val, hints.get(name), f"{where}.{name}")
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ValueError(f"{where}: missing required key(s) {missing}")
    return cls(**kwargs)


def _strip_none(hint: Any) -> tuple[Any, bool]:
    """(``X``, True) for ``X | None`` / ``Optional[X]``; (hint, False) otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def coerce(val: Any, hint: Any, where: str) -> Any:
    """``val`` as the declared type where YAML or a flag gives a looser one."""
    base, _optional = _strip_none(hint)
    if val is None:
        return None
    if base in (int, float) and isinstance(val, str):
        try:
            return int(float(val)) if base is int else float(val)
        except ValueError:
            raise ValueError(f"{where}: expected a number, got {val!r}") from None
    if base is float and isinstance(val, int) and not isinstance(val, bool):
        return float(val)
    if base is Path and isinstance(val, str):
        return Path(val)
    if typing.get_origin(base) is list and isinstance(val, str):
        return [v.strip() for v in val.split(",") if v.strip()]  # "a,b" as a list
    return val


def flag(*flags: str, help: str = "", **options: Any) -> dict[str, Any]:
    """Field metadata exposing a config field as a CLI option (``cli/_config.py`` binds it):
    ``field(default=1, metadata=flag("--trials", help="...", min=1))``. ``options`` are
    ``typer.Option`` keywords (min, max, hidden, ...); ``type=`` overrides the option's type
    (a list field given as one comma-separated string: ``type=str``)."""
    return {"cli": {"flags": flags, "help": help, **options}}


class YamlConfig:
    """Mixin for a config dataclass: ``from_dict``, ``from_yaml(path, overrides)``, ``to_dict``."""

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        return build(cls, d, cls.__name__)

    @classmethod
    def from_yaml(cls: type[T], path: str | Path, overrides: list[str] | None = None) -> T:
        return build(cls, read_yaml(path, overrides), str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]
