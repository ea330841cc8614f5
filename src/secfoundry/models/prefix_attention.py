"""Shared-prefix attention: many suffixes attending to one cached prefix, without copying it.

The straightforward way to score B suffixes after a cached prefix is to expand the prefix's
keys/values to batch B and run ordinary attention over prefix+suffix. That copies the prefix
KV B times per layer (GQA then repeats it again per query head) and was ~55% of the time on
SmolLM2 with a 5-shot prefix.

Here the two parts are computed separately and merged with a log-sum-exp, the same identity
flash attention uses for blocks:

* prefix part: the queries of *all* rows and all heads of a KV group are stacked along the
  sequence axis and attend to the group's prefix keys in one call (the prefix is never
  duplicated and needs no mask: every suffix token sees the whole prefix);
* suffix part: ordinary causal attention among each row's own suffix tokens, with padded
  keys masked out;
* merge: ``out = (Σ_p e^{s_p-m} v_p + Σ_s e^{s_s-m} v_s) / (Σ_p e^{s_p-m} + Σ_s e^{s_s-m})``.

On CPU both parts run through torch's flash-attention kernel, which also returns the
log-sum-exp needed for the merge; elsewhere a portable fp32 implementation is used. transformers gives no hook to pass the prefix to attention, so the function is
registered under its own attention-implementation name and reads the active prefix from a
context variable; it only runs inside :func:`shared_prefix` (the model is switched to it for
the duration of one forward).
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Iterator

NAME = "secfoundry_shared_prefix"
# model types whose attention is plain (RoPE'd) scaled dot-product attention over q/k/v, so the
# merged computation is exact; others fall back to the expanded-cache path
SUPPORTED = {"llama", "mistral", "qwen2", "qwen3", "granite", "olmo", "olmo2", "phi3", "smollm3"}


@dataclass
class _Active:
    kv: list[tuple[Any, Any]]  # per layer (keys, values), each (1, KVH, P, d), RoPE already applied
    lengths: Any  # (B,) real suffix lengths (rows are right-padded)


_ACTIVE: contextvars.ContextVar[_Active | None] = contextvars.ContextVar("secfoundry_prefix", default=None)
_registered = False


def register() -> None:
    """Register the attention function and its mask builder with transformers (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, shared_prefix_attention)
    # the mask transformers builds is not used (we build ours from the lengths), but the model
    # asks for one by implementation name before calling attention
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    _registered = True


def supported(model) -> bool:
    cfg = model.config
    return (getattr(cfg, "model_type", None) in SUPPORTED and not getattr(cfg, "attn_logit_softcapping", None)
            and getattr(cfg, "_attn_implementation", None) in ("sdpa", "eager", None))


@contextlib.contextmanager
def shared_prefix(model, kv: list[tuple[Any, Any]], lengths) -> Iterator[None]:
    """Within this block, the model's attention layers attend to ``kv`` as a shared prefix."""
    register()
    cfg = model.config
    before = cfg._attn_implementation
    token = _ACTIVE.set(_Active(kv=kv, lengths=lengths))
    cfg._attn_implementation = NAME
    try:
        yield
    finally:
        cfg._attn_implementation = before
        _ACTIVE.reset(token)


def shared_prefix_attention(module, query, key, value, attention_mask, scaling: float | None = None,
                            dropout: float = 0.0, **kwargs):
    """query (B, H, S, d); key/value (B, KVH, S, d) of the suffix only. Returns (B, S, H, d)."""
    import torch

    act = _ACTIVE.get()
    if act is None:  # called outside shared_prefix(): behave like sdpa
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                      dropout=dropout, **kwargs)
    pk, pv = act.kv[module.layer_idx]
    B, H, S, d = query.shape
    KVH = key.shape[1]
    g = H // KVH
    scale = scaling if scaling is not None else d ** -0.5
    if query.device.type == "cpu" and _flash_cpu() is not None:
        return _flash_merge(query, key, value, pk, pv, scale)
    return _manual(query, key, value, pk, pv, act.lengths, scale)


def _flash_cpu():
    import torch

    return getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _flash_merge(query, key, value, pk, pv, scale: float):
    """Two calls of torch's CPU flash-attention kernel (it returns the log-sum-exp) + a merge.

    Prefix: queries of every row and every head of a KV group stacked along the sequence axis,
    so heads match the KV heads and the prefix is used as is. Suffix: causal attention within
    each row; with right padding, real queries never reach padded keys, so no mask is needed.
    """
    import torch

    op = _flash_cpu()
    B, H, S, d = query.shape
    KVH = key.shape[1]
    g = H // KVH
    qp = query.view(B, KVH, g, S, d).permute(1, 0, 2, 3, 4).reshape(1, KVH, B * g * S, d)
    o_p, l_p = op(qp, pk, pv, scale=scale)
    o_p = o_p.view(KVH, B, g, S, d).permute(1, 0, 2, 3, 4).reshape(B, H, S, d)
    l_p = l_p.view(KVH, B, g, S).permute(1, 0, 2, 3).reshape(B, H, S)
    k = key.repeat_interleave(g, dim=1) if g > 1 else key
    v = value.repeat_interleave(g, dim=1) if g > 1 else value
    o_s, l_s = op(query.contiguous(), k.contiguous(), v.contiguous(), is_causal=True, scale=scale)
    lse = torch.logaddexp(l_p, l_s)
    out = o_p.float() * torch.exp(l_p - lse)[..., None] + o_s.float() * torch.exp(l_s - lse)[..., None]
    return out.transpose(1, 2).contiguous().to(query.dtype), None


def _manual(query, key, value, pk, pv, lengths, scale: float):
    """Portable fp32 version (any device): explicit scores, masks and softmax merge."""
    import torch

    B, H, S, d = query.shape
    KVH = key.shape[1]
    g = H // KVH
    q = query.float() * scale
    # allowed[b, i, j]: suffix query i may see suffix key j (causal, and j is a real token)
    idx = torch.arange(S, device=query.device)
    allowed = (idx[None, :] <= idx[:, None])[None] & (idx[None, None, :] < lengths[:, None, None])
    neg = torch.finfo(torch.float32).min
    out = torch.empty((B, S, KVH, g, d), dtype=torch.float32, device=query.device)
    for h in range(KVH):  # one KV head at a time bounds the fp32 score memory
        qh = q[:, h * g:(h + 1) * g]  # (B, g, S, d)
        # prefix part: one GEMM for all rows and heads of the group
        sp = qh.reshape(B * g * S, d) @ pk[0, h].float().T  # (BgS, P)
        # suffix part: per row, causal + padding
        ss = qh @ key[:, h].float().transpose(-1, -2)[:, None]  # (B, g, S, S)
        ss = ss.masked_fill(~allowed[:, None], neg)
        m = torch.maximum(sp.amax(-1).view(B, g, S), ss.amax(-1))  # (B, g, S)
        ep = torch.exp(sp - m.reshape(-1, 1))
        es = torch.exp(ss - m[..., None])
        num = (ep @ pv[0, h].float()).view(B, g, S, d) + es @ value[:, h].float()[:, None]
        den = ep.sum(-1).view(B, g, S) + es.sum(-1)
        out[:, :, h] = (num / den[..., None]).transpose(1, 2)  # (B, S, g, d)
    return out.reshape(B, S, H, d).to(query.dtype), None
