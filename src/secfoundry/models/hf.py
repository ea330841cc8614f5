"""transformers backend: any causal LM by hub id, local directory or GGUF file.

Over 400 lines on purpose: one backend per file; the HFModel class keeps its prefix-cache
scoring, generation and tokenization at the boundary together (they share private state).

Scoring is built for multiple-choice evaluation on CPU:

* **Shared-prefix KV cache.** ``choice_logprobs(contexts, choices, prefix)`` and
  ``loglikelihood(requests, prefix)`` run the prefix (e.g. the 5-shot examples) once, keep its
  keys/values (LRU, keyed by the prefix text) and run only the per-question suffixes, batched,
  on top of it. The runner calls repeatedly with the same prefix within a trial, so the prefix
  is paid for once per trial.
* **Output layer only where needed.** We call the decoder (``model.model``) for hidden states
  and apply ``lm_head`` only to the gathered rows we score (the last real position for a
  single-token choice), not to every position: with a 49k vocabulary the output layer is a
  large part of a small model's cost.
* **Tokenization at the prefix/suffix boundary.** The prefix and each suffix are tokenized
  separately (the prefix with the tokenizer's special tokens, i.e. BOS; suffixes without) and
  their ids concatenated. This differs from tokenizing ``prefix + suffix`` in one go only when
  a token would straddle the boundary; the eval runner makes the boundary fall just after a
  newline, where BPE tokenizers split anyway. The uncached path (``prefix_cache=False``)
  uses exactly the same ids, so cached and uncached scores agree.
* **Continuations** (loglikelihood) follow the lm-evaluation-harness convention: trailing
  spaces of the context move to the front of the continuation, then context and continuation
  are tokenized separately.
* Rows are right-padded; the attention mask covers prefix + suffix and position ids continue
  after the prefix. Requests are sorted by length for batching and returned in input order.
"""

from __future__ import annotations

import collections
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from secfoundry.core.errors import InputError
from secfoundry.core.hashing import sha256_file
from secfoundry.models.base import (Capabilities, GenerationConfig, LanguageModel, Message, Prompt, cut_at_stop,
                                    single_token_ids, split_prefix)
from secfoundry.models.registry import register_backend
from secfoundry.models.spec import ModelSpec

_DTYPES = {
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp16": "float16", "float16": "float16", "half": "float16",
    "fp32": "float32", "float32": "float32", "float": "float32",
}


def resolve_dtype(name: str | None, device: str = "cpu"):
    """``auto``/None: bf16 on a CPU with native bf16 (AVX512-BF16/AMX) or on CUDA, else fp32."""
    import torch

    if name is None or name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        try:
            native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except Exception:  # older/odd builds: be conservative
            native = False
        return torch.bfloat16 if native else torch.float32
    if isinstance(name, torch.dtype):
        return name
    key = str(name).lower().replace("torch.", "")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of auto, bf16, fp16, fp32")
    return getattr(torch, _DTYPES[key])


@dataclass
class _Prefix:
    ids: list[int]
    kv: list[tuple[Any, Any]]  # per layer (keys, values), batch 1
    last_hidden: Any  # (H,) final-norm hidden state at the prefix's last position


class HFModel(LanguageModel):
    """A transformers causal LM.

    Options: ``dtype`` (auto|bf16|fp16|fp32), ``threads`` (torch intra-op threads),
    ``batch_size`` (rows per forward), ``prefix_cache`` (reuse the shared prefix's KV),
    ``revision``, ``device``, ``max_length`` (context limit; default from the config),
    ``prefix_cache_size`` (how many distinct prefixes to keep), ``prefix_attention``
    (auto|shared|expand: how suffixes attend to a cached prefix, see prefix_attention.py).
    """

    def __init__(self, path: str | os.PathLike, *, spec: str = "", gguf_file: str | None = None,
                 revision: str | None = None, dtype: str | None = "auto", threads: int | None = None,
                 batch_size: int = 16, prefix_cache: bool = True, prefix_cache_size: int = 4,
                 device: str = "cpu", max_length: int | None = None, trust_remote_code: bool = False,
                 weights_sha256: dict[str, str] | None = None, extra_describe: dict | None = None,
                 prefix_attention: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        prefix_attention_mode = prefix_attention
        if prefix_attention_mode not in ("auto", "shared", "expand"):
            raise ValueError(f"prefix_attention must be auto, shared or expand, not {prefix_attention_mode!r}")
        if threads:
            torch.set_num_threads(int(threads))
        self.spec = spec or f"hf:{path}"
        self.path = str(path)
        self.gguf_file = gguf_file
        self.revision = revision
        self.device = device
        self.threads = threads
        self.batch_size = max(1, int(batch_size))
        self.prefix_cache_enabled = bool(prefix_cache)
        self.dtype = resolve_dtype(dtype, device)
        load_kw: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
        if gguf_file:
            load_kw["gguf_file"] = gguf_file
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, **load_kw)
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=self.dtype, **load_kw)
        if gguf_file:  # de-quantized fp32 tensors; drop the quantizer so dtype casts work
            self.model.hf_quantizer = None
            self.model.is_quantized = False
        self.model.to(device=device, dtype=self.dtype)
        self.model.eval()
        cfg = self.model.config
        self.max_length = int(max_length or getattr(cfg, "max_position_embeddings", 0) or 4096)
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (
            tok.eos_token_id if tok.eos_token_id is not None else 0)
        self._decoder = self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.model
        self._head = self.model.get_output_embeddings()
        params = inspect.signature(self._decoder.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._softcap = getattr(cfg, "final_logit_softcapping", None)
        self._logit_scale = getattr(cfg, "logit_scale", None) if cfg.model_type == "cohere" else None
        self._prefixes: collections.OrderedDict[str, _Prefix] = collections.OrderedDict()
        self._prefix_cache_size = max(1, int(prefix_cache_size))
        self._weights_sha256 = weights_sha256
        self._extra_describe = extra_describe or {}
        self._torch = torch
        from secfoundry.models import prefix_attention

        # "shared": prefix attended without copies (prefix_attention.py); "expand": the prefix KV
        # expanded to the batch in a DynamicCache (any architecture)
        ok = prefix_attention.supported(self.model)
        if prefix_attention_mode == "shared" and not ok:
            raise ValueError(f"{self.spec}: shared-prefix attention does not support this architecture "
                             f"({cfg.model_type}); use prefix_attention='expand'")
        self._shared_attention = ok and prefix_attention_mode != "expand"

    # ------------------------------------------------------------------ interface

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(generate=True, loglikelihood=True, choice_logprobs=True,
                            prefix_cache=self.prefix_cache_enabled,
                            chat_template=getattr(self.tokenizer, "chat_template", None) is not None)

    def apply_chat_template(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise NotImplementedError(f"{self.spec}: the tokenizer has no chat template")
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        d: dict[str, Any] = {
            "spec": self.spec, "backend": "hf", "model_path": self.path,
            "gguf_file": self.gguf_file, "revision": self.revision or getattr(self.model.config, "_commit_hash", None),
            "dtype": str(self.dtype).replace("torch.", ""), "device": self.device,
            "threads": self.threads or torch.get_num_threads(), "batch_size": self.batch_size,
            "prefix_cache": self.prefix_cache_enabled, "max_length": self.max_length,
            "prefix_attention": "shared" if self._shared_attention else "expand",
            "architecture": (self.model.config.architectures or [type(self.model).__name__])[0],
            "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        }
        d["weights_sha256"] = self.weights_sha256()
        d.update(self._extra_describe)
        return d

    def weights_sha256(self) -> dict[str, str] | None:
        """sha256 of each local weight file (computed once); None for hub models (use revision)."""
        if self._weights_sha256 is None:
            p = Path(self.path)
            files = [p / self.gguf_file] if self.gguf_file else sorted(
                [*p.glob("*.safetensors"), *p.glob("*.gguf")]) if p.is_dir() else []
            if not files:
                return None
            out = {}
            for f in files:
                out[f.name] = sha256_file(f)
            self._weights_sha256 = out
        return self._weights_sha256

    def choice_logprobs(self, contexts: Sequence[str], choices: Sequence[str], prefix: str = "") -> list[list[float]]:
        targets = single_token_ids(choices, lambda c: self._encode(c, special=False))
        if targets is None:  # multi-token choices: score each as a continuation
            return self.choice_loglikelihoods(contexts, choices, prefix)
        prefix, tail = split_prefix(prefix)
        pre = self._get_prefix(prefix)
        rows = [self._encode(tail + ctx, special=not prefix) for ctx in contexts]
        wants = [[len(r) - 1] for r in rows]
        return self._score_rows(pre, rows, wants, prefix, lambda i, lp: lp[0, targets].tolist())

    def loglikelihood(self, requests: Sequence[tuple[str, str]], prefix: str = "") -> list[tuple[float, bool]]:
        prefix, tail = split_prefix(prefix)
        pre = self._get_prefix(prefix)
        rows, wants, conts = [], [], []
        for i, (ctx, cont) in enumerate(requests):
            if not cont:
                raise InputError("empty continuation", row=i, field="continuation")
            ctx = tail + ctx
            n = len(ctx) - len(ctx.rstrip(" "))
            if n:  # lm-eval convention: the space belongs to the continuation's first token
                ctx, cont = ctx[:-n], ctx[-n:] + cont
            c_ids = self._encode(ctx, special=not prefix)
            k_ids = self._encode(cont, special=False)
            row = c_ids + k_ids[:-1]
            rows.append(row)
            wants.append([len(c_ids) - 1 + j for j in range(len(k_ids))])
            conts.append(k_ids)
        def reduce(i: int, lp) -> tuple[float, bool]:
            tgt = self._torch.tensor(conts[i])
            picked = lp.gather(1, tgt[:, None])[:, 0]
            return float(picked.sum()), bool((lp.argmax(dim=1) == tgt).all())

        return self._score_rows(pre, rows, wants, prefix, reduce)

    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig | None = None) -> list[str]:
        import torch
        from transformers import GenerationConfig as HFGenConfig

        cfg = config or GenerationConfig()
        encoded = []
        for p in prompts:
            if isinstance(p, str):
                encoded.append(self._encode(p, special=True))
            else:  # chat messages: the template already holds the special tokens
                encoded.append(self._encode(self.apply_chat_template(list(p)), special=False))
        base = self.model.generation_config
        eos = base.eos_token_id if base.eos_token_id is not None else self.tokenizer.eos_token_id
        gc = HFGenConfig(
            max_new_tokens=cfg.max_new_tokens, do_sample=cfg.temperature > 0,
            temperature=cfg.temperature if cfg.temperature > 0 else None,
            top_p=cfg.top_p if cfg.temperature > 0 else None, top_k=0 if cfg.temperature > 0 else None,
            eos_token_id=eos, pad_token_id=self.pad_id, bos_token_id=base.bos_token_id,
            stop_strings=list(cfg.stop) or None,
        )
        # the tokenizer lets transformers stop as soon as a stop string appears in the text
        extra: dict[str, Any] = {"tokenizer": self.tokenizer} if cfg.stop else {}
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        outputs: list[str] = [""] * len(encoded)
        limit = self.max_length - cfg.max_new_tokens
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            if cfg.seed is not None:
                torch.manual_seed(cfg.seed)
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                rows = [encoded[i][-limit:] if limit > 0 else encoded[i] for i in idx]
                width = max(len(r) for r in rows)
                ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for j, r in enumerate(rows):  # left padding: new tokens start at the same column
                    ids[j, width - len(r):] = torch.tensor(r, dtype=torch.long)
                    mask[j, width - len(r):] = 1
                gen = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                          generation_config=gc, **extra)
                for j, i in enumerate(idx):
                    text = self.tokenizer.decode(gen[j, width:], skip_special_tokens=True)
                    outputs[i] = cut_at_stop(text, cfg.stop)
        return outputs

    # ------------------------------------------------------------------ internals

    def _encode(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def _get_prefix(self, prefix: str) -> _Prefix | None:
        """The KV cache of ``prefix`` (computed on first use, then reused; LRU)."""
        if not prefix or not self.prefix_cache_enabled:
            return None
        hit = self._prefixes.get(prefix)
        if hit is not None:
            self._prefixes.move_to_end(prefix)
            return hit
        torch = self._torch
        ids = self._encode(prefix, special=True)
        if len(ids) >= self.max_length:
            raise InputError(f"prefix is {len(ids)} tokens, the model's limit is {self.max_length}", field="prefix")
        with torch.inference_mode():
            out = self._decoder(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        entry = _Prefix(ids=ids, kv=kv, last_hidden=out.last_hidden_state[0, -1])
        self._prefixes[prefix] = entry
        while len(self._prefixes) > self._prefix_cache_size:
            self._prefixes.popitem(last=False)
        return entry

    def clear_prefix_cache(self) -> None:
        self._prefixes.clear()

    def _logprobs(self, hidden):
        """Output layer + log-softmax (fp32) on a (N, H) stack of hidden states."""
        torch = self._torch
        logits = self._head(hidden).float()
        if self._logit_scale:
            logits = logits * self._logit_scale
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return torch.log_softmax(logits, dim=-1)

    def _score_rows(self, pre: _Prefix | None, rows: list[list[int]], wants: list[list[int]], prefix: str,
                    reduce: Callable[[int, Any], Any]) -> list[Any]:
        """For each row i, ``reduce(i, lp)`` where lp is the log-softmax (len(want), V) of the
        next-token distribution at each wanted position (suffix coordinates; -1 = the prefix's
        last position). Reduced right away so full-vocabulary rows never pile up. Input order."""
        torch = self._torch
        if prefix and pre is None:  # caching disabled: the same ids, recomputed in every row
            p_ids = self._encode(prefix, special=True)
            rows = [p_ids + r for r in rows]
            wants = [[w + len(p_ids) for w in ws] for ws in wants]
        P = len(pre.ids) if pre else 0
        room = self.max_length - P
        fitted = []
        for i, (r, ws) in enumerate(zip(rows, wants)):
            if not r and pre is None:
                raise InputError("nothing to condition on (empty context and no prefix)", row=i, field="context")
            if len(r) > room:  # keep the end (where the scored tokens are); drop the oldest context
                cut = len(r) - room
                if min(ws) - cut < (-1 if pre else 0):
                    raise InputError(f"continuation does not fit the model's {self.max_length}-token window",
                                     row=i, field="continuation")
                r, ws = r[cut:], [w - cut for w in ws]
            fitted.append((r, ws))
        results: list[Any] = [None] * len(fitted)
        order = sorted(range(len(fitted)), key=lambda i: -len(fitted[i][0]))
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                batch = [fitted[i] for i in idx]
                S = max(len(r) for r, _ in batch)
                hidden = self._run(pre, [r for r, _ in batch], S) if S > 0 else None
                gathered, counts = [], []
                for j, (r, ws) in enumerate(batch):
                    for w in ws:
                        gathered.append(pre.last_hidden if w < 0 else hidden[j, w])
                    counts.append(len(ws))
                lp = self._logprobs(torch.stack(gathered)).cpu()
                for i, part in zip(idx, torch.split(lp, counts)):
                    results[i] = reduce(i, part)
        return results

    def _run(self, pre: _Prefix | None, rows: list[list[int]], S: int):
        """Decoder hidden states (B, S, H) for right-padded rows continuing after ``pre``."""
        torch = self._torch
        from transformers import DynamicCache

        B = len(rows)
        P = len(pre.ids) if pre else 0
        ids = torch.full((B, S), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, P + S), dtype=torch.long)
        mask[:, :P] = 1
        for j, r in enumerate(rows):
            if r:
                ids[j, :len(r)] = torch.tensor(r, dtype=torch.long)
            mask[j, P:P + len(r)] = 1
        pos = (torch.arange(S) + P).unsqueeze(0).expand(B, S)
        if pre is not None and self._shared_attention:
            from secfoundry.models.prefix_attention import shared_prefix

            lengths = torch.tensor([len(r) for r in rows], device=self.device)
            with shared_prefix(self.model, pre.kv, lengths):
                out = self._decoder(input_ids=ids.to(self.device), position_ids=pos.to(self.device),
                                    use_cache=False)
            return out.last_hidden_state
        kw: dict[str, Any] = {}
        if pre is not None:
            # expanded views, not copies: the cache's first update concatenates into new tensors
            kw[self._cache_kw] = DynamicCache(
                ddp_cache_data=[(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in pre.kv])
        out = self._decoder(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                            position_ids=pos.to(self.device), use_cache=pre is not None, **kw)
        return out.last_hidden_state


HF_OPTIONS = frozenset({"dtype", "threads", "batch_size", "prefix_cache", "prefix_cache_size", "device",
                        "max_length", "trust_remote_code", "revision", "prefix_attention"})


@register_backend("hf", options=HF_OPTIONS)
def load_hf(ms: ModelSpec, **opts: Any) -> HFModel:
    """``hf:ORG/NAME[@REV]`` (hub), ``hf:/local/dir`` or ``hf:/path/model.gguf``."""
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
