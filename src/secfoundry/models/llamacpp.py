"""llama-cpp-python backend (optional extra ``[llamacpp]``): fast CPU inference of GGUF models.

Generation uses llama.cpp's own sampler (~4x faster than transformers on CPU for SmolLM2).
Scoring reads the raw logits llama.cpp computes for every evaluated token (``logits_all=True``,
``eval`` + ``scores``) and applies log-softmax here; the ``echo=True`` logprobs of
``create_completion`` are not used (they are wrong for prompt tokens).

Prefix reuse comes for free: before evaluating a sequence we keep the longest common prefix
with what is already in llama.cpp's KV cache and evaluate only the rest, so a few-shot prefix
shared by consecutive questions is computed once. Tokenization follows the hf backend: the
prefix gets the model's BOS (if its GGUF asks for one), contexts and continuations are
tokenized separately, and trailing spaces of a context move to its continuation.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any, Sequence

from secfoundry.core.errors import InputError
from secfoundry.models.base import Capabilities, GenerationConfig, LanguageModel, Message, Prompt
from secfoundry.models.base import cut_at_stop, single_token_ids, split_prefix
from secfoundry.models.registry import register_backend
from secfoundry.models.spec import ModelSpec


def _import_llama():
    try:
        import llama_cpp
    except ImportError as e:
        raise ImportError("the llamacpp backend needs llama-cpp-python: pip install 'secfoundry[llamacpp]' "
                          "(or pip install llama-cpp-python; it compiles llama.cpp, a few minutes)") from e
    return llama_cpp


_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def _model_params(repack: bool):
    """Set llama.cpp's ``use_extra_bufts`` (weight repacking) for a Llama being constructed.

    llama-cpp-python does not expose the field, and builds its model params from
    ``llama_model_default_params()``; we wrap that function for the duration of the
    constructor (under a lock, restored afterwards).
    """
    import llama_cpp.llama_cpp as lc

    if repack or not hasattr(lc.llama_model_default_params(), "use_extra_bufts"):
        yield
        return
    with _PARAMS_LOCK:
        orig = lc.llama_model_default_params

        def params():
            p = orig()
            p.use_extra_bufts = False
            return p

        lc.llama_model_default_params = params
        try:
            yield
        finally:
            lc.llama_model_default_params = orig


class LlamaCppModel(LanguageModel):
    """Options: ``threads``, ``n_ctx`` (context window; the logits buffer is n_ctx x vocab fp32),
    ``n_batch``/``batch_size`` (tokens per llama.cpp decode call), ``seed``, ``chat_format``
    (a Jinja chat template overriding the GGUF's), ``verbose``, ``repack`` (let llama.cpp repack
    weights into its CPU-specific layouts, e.g. AMX tiles; off by default because on this
    project's AMX machine decoding with repacked Q4_1 weights crashes llama-cpp-python 0.3.36
    with a segfault)."""

    def __init__(self, path: str | os.PathLike, *, spec: str = "", threads: int | None = None, n_ctx: int = 2048,
                 n_batch: int | None = None, batch_size: int | None = None, seed: int = 0,
                 chat_format: str | None = None, verbose: bool = False, repack: bool = False):
        llama_cpp = _import_llama()
        self.path = Path(path)
        self.spec = spec or f"llamacpp:{self.path}"
        self.threads = threads or min(os.cpu_count() or 1, 8)
        self.n_ctx = int(n_ctx)
        self._llama_cpp_version = getattr(llama_cpp, "__version__", "?")
        self.repack = bool(repack)
        with _model_params(repack=self.repack):
            self.llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=self.n_ctx,
                                       n_batch=int(n_batch or batch_size or 512), n_threads=self.threads,
                                       n_threads_batch=self.threads, logits_all=True, seed=seed,
                                       verbose=verbose)
        self._lock = threading.Lock()  # a llama.cpp context is not thread-safe
        self._template = chat_format or self.llm.metadata.get("tokenizer.chat_template")
        self._sha256: str | None = None

    # ------------------------------------------------------------------ interface

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(generate=True, loglikelihood=True, choice_logprobs=True, prefix_cache=True,
                            chat_template=self._template is not None)

    def describe(self) -> dict[str, Any]:
        if self._sha256 is None:
            from secfoundry.core.hashing import sha256_file

            self._sha256 = sha256_file(self.path)
        return {"spec": self.spec, "backend": "llamacpp", "model_path": str(self.path),
                "weights_sha256": {self.path.name: self._sha256}, "n_ctx": self.n_ctx, "threads": self.threads,
                "llama_cpp_python_version": self._llama_cpp_version, "repack": self.repack,
                "model_name": self.llm.metadata.get("general.name")}

    def close(self) -> None:
        close = getattr(self.llm, "close", None)
        if callable(close):
            close()

    def apply_chat_template(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        if self._template is None:
            raise NotImplementedError(f"{self.spec}: the GGUF has no chat template (pass chat_format=...)")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(msg):
            raise ValueError(msg)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        return env.from_string(self._template).render(
            messages=list(messages), add_generation_prompt=add_generation_prompt,
            bos_token=self._tok_text(self.llm.token_bos()), eos_token=self._tok_text(self.llm.token_eos()))

    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig | None = None) -> list[str]:
        cfg = config or GenerationConfig()
        outs = []
        for i, p in enumerate(prompts):
            if isinstance(p, str):
                ids = self._encode(p, bos=True)
            else:
                ids = self._encode(self.apply_chat_template(list(p)), bos=False)
            room = self.n_ctx - cfg.max_new_tokens
            if room <= 0:
                raise InputError(f"max_new_tokens {cfg.max_new_tokens} does not fit n_ctx {self.n_ctx}", row=i)
            ids = ids[-room:]
            with self._lock:
                if cfg.seed is not None:
                    # Reproducible sampling: llama.cpp would reuse the KV of the previous prompt's
                    # common prefix and decode only the rest, in other batch shapes, so the logits
                    # (and a sampled token) can differ from a fresh run. Seeded calls start fresh.
                    self.llm.reset()
                out = self.llm.create_completion(
                    prompt=ids, max_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                    top_p=cfg.top_p if cfg.temperature > 0 else 1.0, top_k=0, min_p=0.0, typical_p=1.0,
                    repeat_penalty=1.0, stop=list(cfg.stop) or None,
                    seed=cfg.seed if cfg.seed is not None else None)
            outs.append(cut_at_stop(out["choices"][0]["text"], cfg.stop))
        return outs

    def choice_logprobs(self, contexts: Sequence[str], choices: Sequence[str], prefix: str = "") -> list[list[float]]:
        targets = single_token_ids(choices, lambda c: self._encode(c, bos=False))
        if targets is None:  # multi-token choices: score each as a continuation
            return self.choice_loglikelihoods(contexts, choices, prefix)
        prefix, tail = split_prefix(prefix)
        p_ids = self._encode(prefix, bos=True) if prefix else []
        out = []
        for i, ctx in enumerate(contexts):
            ids = p_ids + self._encode(tail + ctx, bos=not prefix)
            if not ids:
                raise InputError("nothing to condition on (empty context and no prefix)", row=i, field="context")
            ids = self._fit(ids, keep=1, row=i)
            with self._lock:
                lp = self._logprobs_at(ids, [len(ids) - 1])[0]
            out.append([float(lp[t]) for t in targets])
        return out

    def loglikelihood(self, requests: Sequence[tuple[str, str]], prefix: str = "") -> list[tuple[float, bool]]:
        prefix, tail = split_prefix(prefix)
        p_ids = self._encode(prefix, bos=True) if prefix else []
        results = []
        for i, (ctx, cont) in enumerate(requests):
            if not cont:
                raise InputError("empty continuation", row=i, field="continuation")
            ctx = tail + ctx
            n = len(ctx) - len(ctx.rstrip(" "))
            if n:
                ctx, cont = ctx[:-n], ctx[-n:] + cont
            c_ids = p_ids + self._encode(ctx, bos=not prefix)
            k_ids = self._encode(cont, bos=False)
            if not c_ids:
                raise InputError("nothing to condition on (empty context and no prefix)", row=i, field="context")
            ids = self._fit(c_ids + k_ids, keep=len(k_ids) + 1, row=i)
            start = len(ids) - len(k_ids)
            with self._lock:
                lps = self._logprobs_at(ids[:-1], list(range(start - 1, len(ids) - 1)))
            total = sum(float(lp[t]) for lp, t in zip(lps, k_ids))
            greedy = all(int(lp.argmax()) == t for lp, t in zip(lps, k_ids))
            results.append((total, greedy))
        return results

    # ------------------------------------------------------------------ internals

    def _encode(self, text: str, bos: bool) -> list[int]:
        if not text:
            return [self.llm.token_bos()] if bos and self._adds_bos() else []
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=True))

    def _adds_bos(self) -> bool:
        return len(self.llm.tokenize(b"a", add_bos=True, special=True)) > len(
            self.llm.tokenize(b"a", add_bos=False, special=True))

    def _tok_text(self, tid: int) -> str:
        return self.llm.detokenize([tid], special=True).decode("utf-8", errors="replace") if tid >= 0 else ""

    def _fit(self, ids: list[int], keep: int, row: int) -> list[int]:
        if len(ids) <= self.n_ctx:
            return ids
        if keep > self.n_ctx:
            raise InputError(f"continuation does not fit n_ctx {self.n_ctx}", row=row, field="continuation")
        return ids[-self.n_ctx:]

    def _logprobs_at(self, ids: list[int], positions: list[int]):
        """Evaluate ``ids`` (reusing the cached common prefix) and return log-softmax rows."""
        import numpy as np

        llm = self.llm
        have = llm.input_ids[: llm.n_tokens]
        n = 0
        limit = min(len(have), len(ids) - 1)  # always evaluate >= 1 token so the last row is fresh
        while n < limit and have[n] == ids[n]:
            n += 1
        llm.n_tokens = n
        llm.eval(ids[n:])
        rows = np.asarray(llm.scores[positions], dtype=np.float64)
        mx = rows.max(axis=1, keepdims=True)
        return rows - mx - np.log(np.exp(rows - mx).sum(axis=1, keepdims=True))


LLAMACPP_OPTIONS = frozenset({"threads", "n_ctx", "batch_size", "n_batch", "seed", "chat_format", "verbose", "repack"})


@register_backend("llamacpp", options=LLAMACPP_OPTIONS)
def load_llamacpp(ms: ModelSpec, **opts: Any) -> LlamaCppModel:
    """``llamacpp:/path/model.gguf`` (llama-cpp-python, an optional extra)."""
    path = Path(ms.target).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{ms.spec}: GGUF file {path} does not exist")
    return LlamaCppModel(path, spec=ms.spec, **opts)
