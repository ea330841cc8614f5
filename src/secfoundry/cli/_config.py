"""Bind a typed config dataclass to a command's flags (and a ``--config`` YAML file).

    @app.command("run")
    @config_command(RunConfig)
    def run_cmd(cfg: RunConfig, json_out: bool = typer.Option(False, "--json")) -> None: ...

Every field whose metadata has ``flag(...)`` (``core/typed_config.py``) becomes an option;
``--config FILE`` loads a YAML mapping of the same keys first, and options typed on the command
line win over it. The config is then built by the same ``build`` as YAML-only configs, so
types, unknown keys and missing required keys are checked in one place. No field is copied by
hand from a flag into the config.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from secfoundry.core.typed_config import _strip_none, build, read_yaml

_KW = inspect.Parameter.KEYWORD_ONLY


def _option_type(hint: Any, override: Any, default: Any) -> Any:
    if override is not None:
        return Optional[override]
    base, _ = _strip_none(hint)
    if base is bool and default is not None:
        return bool  # a plain flag (--permute); tri-state flags (--instruct/--base) keep Optional
    return Optional[base]  # an absent option leaves the key to YAML or the field default


def config_command(cls: type, *, config_flag: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the command's first parameter ``cfg`` receives a ``cls`` built from its flags."""
    hints = typing.get_type_hints(cls)
    bound = [f for f in dataclasses.fields(cls) if "cli" in f.metadata]

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        own_hints = typing.get_type_hints(fn)
        params = [inspect.Parameter("ctx", _KW, annotation=typer.Context)]
        for f in bound:
            meta = dict(f.metadata["cli"])
            flags, override = meta.pop("flags"), meta.pop("type", None)
            has_default = f.default is not dataclasses.MISSING
            default = f.default if has_default and f.default is not None and override is None else None
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                meta["help"] = (meta.get("help", "") + " Required (here or in --config).").strip()
            params.append(inspect.Parameter(f.name, _KW, default=typer.Option(default, *flags, **meta),
                                            annotation=_option_type(hints[f.name], override, default)))
        if config_flag:
            params.append(inspect.Parameter(
                "config", _KW, annotation=Optional[Path],
                default=typer.Option(None, "--config", help=f"YAML with {cls.__name__} keys; options given "
                                                            "on the command line override it.")))
        own = [p.replace(kind=_KW, annotation=own_hints.get(n, p.annotation))
               for n, p in inspect.signature(fn).parameters.items() if n != "cfg"]
        params += own

        @functools.wraps(fn)
        def wrapper(ctx: typer.Context, **kwargs: Any) -> Any:
            cfg_file = kwargs.pop("config", None)
            values: dict[str, Any] = {}
            if cfg_file is not None:
                try:
                    values = read_yaml(cfg_file)
                except (OSError, ValueError) as e:
                    raise typer.BadParameter(str(e), param_hint="--config") from e
            for f in bound:
                v = kwargs.pop(f.name)
                source = ctx.get_parameter_source(f.name)
                typed = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
                if typed or (f.name not in values and v is not None):
                    values[f.name] = v
            missing = [f.metadata["cli"]["flags"][0].split("/")[0] for f in bound if f.name not in values
                       and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
            if missing:
                raise typer.BadParameter(f"missing option {', '.join(missing)} (or its key in --config)")
            try:
                cfg = build(cls, values, str(cfg_file) if cfg_file else "options")
            except ValueError as e:
                raise typer.BadParameter(str(e)) from e
            return fn(cfg, **kwargs)

        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return deco
