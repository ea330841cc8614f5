"""The chunked linear+cross-entropy loss matches the HF loss and gradients (tiny Llama)."""

from __future__ import annotations

import pytest
import torch

from secfoundry.train.loss import causal_lm_loss, linear_cross_entropy, supports_fused_loss

from .conftest import TINY_LLAMA


def _model(seed: int = 0, **over):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    conf = LlamaConfig(**{**TINY_LLAMA, **over})
    conf._attn_implementation = "sdpa"
    return AutoModelForCausalLM.from_config(conf, dtype=torch.float32)


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("tied", [True, False])
def test_fused_loss_matches_hf_loss_and_grads(autocast, tied):
    model = _model(tie_word_embeddings=tied)
    assert supports_fused_loss(model)
    x = torch.randint(0, TINY_LLAMA["vocab_size"], (3, 40), generator=torch.Generator().manual_seed(1))
    labels = x.clone()
    labels[0, :5] = -100  # ignored targets are ignored the same way

    def run(fn):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = fn()
        (loss / 2).backward()  # a non-unit upstream gradient (gradient accumulation) is applied
        return loss.detach(), _grads(model)

    ref_loss, ref_g = run(lambda: model(input_ids=x, labels=labels, use_cache=False).loss)
    # A chunk that does not divide the 120 rows exercises the ragged last chunk.
    got_loss, got_g = run(lambda: causal_lm_loss(model, x, labels, chunk=32))
    tol = 1e-2 if autocast else 1e-5
    assert got_loss.item() == pytest.approx(ref_loss.item(), rel=1e-3 if autocast else 1e-6)
    assert set(got_g) == set(ref_g)
    for n in ref_g:
        err = (got_g[n] - ref_g[n]).norm() / ref_g[n].norm().clamp(min=1e-12)
        assert err < tol, (n, float(err))


def test_no_grad_path_and_all_ignored():
    torch.manual_seed(0)
    h = torch.randn(10, 8)
    w = torch.randn(20, 8)
    t = torch.randint(0, 20, (10,))
    with torch.no_grad():
        got = linear_cross_entropy(h, w, t, chunk=3)
    ref = torch.nn.functional.cross_entropy(h @ w.t(), t)
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)
    # Nothing to predict: zero loss and zero gradients, not NaN.
    hh = h.clone().requires_grad_()
    loss = linear_cross_entropy(hh, w, torch.full((10,), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(hh.grad) == 0


def test_unsupported_head_falls_back():
    from transformers import GPT2Config, GPT2LMHeadModel

    m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32))
    assert not supports_fused_loss(m)


def test_compiled_chunk_matches_eager():
    torch.manual_seed(0)
    h = torch.randn(48, 16, requires_grad=True)
    w = torch.randn(40, 16, requires_grad=True)
    t = torch.randint(0, 40, (48,))
    t[:3] = -100
    out = []
    for compiled in (False, True):
        h.grad = w.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = linear_cross_entropy(h, w, t, chunk=16, compiled=compiled)
        loss.backward()
        out.append((loss.item(), h.grad.clone(), w.grad.clone()))
    (l0, gh0, gw0), (l1, gh1, gw1) = out
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert torch.allclose(gh1, gh0, rtol=2e-2, atol=1e-4) and torch.allclose(gw1, gw0, rtol=2e-2, atol=1e-4)
