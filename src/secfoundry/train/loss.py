"""Next-token loss computed from hidden states in chunks: the full logits tensor never exists.

The HF causal-LM head computes ``logits = lm_head(h)`` for every token and then upcasts them to
fp32 for the cross-entropy: with SmolLM2's 49,152-token vocabulary that is ~200 KB of fp32
logits per token (plus their bf16 copy, the log-softmax and the gradient of each), i.e. ~0.8 GB
per 4,096-token micro-batch, and all of it is memory-bound work on a CPU. Here the head matmul,
log-softmax and its gradient run over row chunks inside one autograd Function: the forward
pass also produces the gradients w.r.t. the hidden states and the head weight (they only need
the chunk's softmax), so the backward pass is a scale by the incoming gradient and nothing of
size (tokens x vocab) is kept for it.

Numerics follow HF under bf16 autocast: the head matmul runs in the autocast dtype, the
softmax/cross-entropy in fp32, and the gradient matmuls in the autocast dtype (what autocast's
linear backward does). Tested against the HF loss and gradients in tests/train/test_loss.py.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100
# Model types whose logits are exactly ``h @ lm_head.weight.T`` (no bias, soft-capping or
# scaling), so the fused loss equals the HF loss. Others fall back to the HF path.
FUSED_LOSS_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def supports_fused_loss(model: torch.nn.Module) -> bool:
    cfg = getattr(model, "config", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return (cfg is not None and getattr(cfg, "model_type", None) in FUSED_LOSS_MODEL_TYPES
            and isinstance(head, torch.nn.Linear) and head.bias is None and hasattr(model, "model"))


def _compute_dtype(weight: torch.Tensor) -> torch.dtype:
    dev = weight.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return weight.dtype


def _chunk_loss_and_grad(logits: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed CE of one chunk and d(scale * CE)/d logits = (softmax - onehot) * scale, zero on
    ignored rows, in the logits' dtype. Softmax math in fp32 (HF upcasts logits the same way)."""
    x = logits.float()
    valid = targets != IGNORE_INDEX
    safe_t = torch.where(valid, targets, 0)
    lse = torch.logsumexp(x, dim=-1)
    picked = x.gather(1, safe_t[:, None]).squeeze(1)
    loss = torch.where(valid, lse - picked, 0.0).sum()
    g = x.sub_(lse[:, None]).exp_()  # in place: one (chunk x vocab) fp32 buffer in eager mode
    g.scatter_add_(1, safe_t[:, None], torch.full_like(picked[:, None], -1.0))
    g.mul_((valid.to(torch.float32) * scale)[:, None])
    return loss, g.to(logits.dtype)


_compiled_chunk = None


def _chunk_fn(compiled: bool):
    """Eager, or one fused compiled kernel (reads the bf16 logits, writes the bf16 gradient:
    no fp32 (chunk x vocab) buffers at all)."""
    global _compiled_chunk
    if not compiled:
        return _chunk_loss_and_grad
    if _compiled_chunk is None:
        _compiled_chunk = torch.compile(_chunk_loss_and_grad, dynamic=False)
    return _compiled_chunk


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int,
                dtype: torch.dtype, n_valid: torch.Tensor, compiled: bool) -> torch.Tensor:
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        chunk_fn = _chunk_fn(compiled)
        h_all = hidden.to(dtype)
        w = weight.to(dtype)
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        inv_n = 1.0 / n_valid.clamp(min=1).to(torch.float32)
        for s in range(0, h_all.shape[0], chunk):
            h = h_all[s:s + chunk]
            t = targets[s:s + chunk]
            logits = h @ w.t()  # (chunk, vocab) in the autocast dtype, like HF's lm_head
            if not (need_h or need_w):
                x = logits.float()
                valid = t != IGNORE_INDEX
                picked = x.gather(1, torch.where(valid, t, 0)[:, None]).squeeze(1)
                total += torch.where(valid, torch.logsumexp(x, dim=-1) - picked, 0.0).sum()
            else:
                loss, g = chunk_fn(logits, t, inv_n)
                total += loss
                if need_h:
                    grad_h[s:s + chunk] = g @ w
                if need_w:
                    grad_w += g.t() @ h  # bf16 partial per chunk, summed in fp32
        ctx.save_for_backward(grad_h if need_h else None, grad_w if need_w else None)
        ctx.weight_dtype = weight.dtype
        return total * inv_n

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        return gh, gw, None, None, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int = 1024, compiled: bool = False) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets`` (``-100`` ignored).

    ``hidden`` is (N, H), ``targets`` (N,). Gradients flow to ``hidden`` and ``weight``.
    ``compiled`` fuses the per-chunk softmax/gradient math with torch.compile.
    """
    dtype = _compute_dtype(weight)
    n_valid = (targets != IGNORE_INDEX).sum()
    with torch.autocast(hidden.device.type, enabled=False):
        return _LinearCrossEntropy.apply(hidden, weight, targets, chunk, dtype, n_valid, compiled)


def causal_lm_loss(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                   chunk: int = 1024, compiled: bool = False) -> torch.Tensor:
    """The HF causal-LM loss (labels shifted inside, mean over non-ignored targets) without logits.

    ``model`` is an unwrapped HF ``*ForCausalLM`` for which :func:`supports_fused_loss` holds.
    """
    labels = input_ids if labels is None else labels
    hidden = model.model(input_ids=input_ids, use_cache=False).last_hidden_state
    # Position i predicts token i+1; the last position of each row has no target (HF pads it -100).
    targets = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    return linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1]), model.lm_head.weight,
                                targets.reshape(-1), chunk, compiled)
