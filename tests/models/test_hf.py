"""HFModel on a tiny random Llama: cached scoring == plain forward, generation == transformers."""

from __future__ import annotations

import pytest
import torch

from secfoundry.core.errors import InputError
from secfoundry.models import GenerationConfig, load_model
from secfoundry.models.base import cut_at_stop
from secfoundry.models.hf import HFModel, resolve_dtype

PREFIX = ("The following are multiple choice questions about computer security.\n\n"
          "Question: Which port does HTTPS use?\nA. 80\nB. 443\nC. 22\nD. 21\nAnswer: B\n\n")
CONTEXTS = [
    "Question: What is SQL injection?\nA. a query attack\nB. a virus\nC. a firewall\nD. a cipher\nAnswer:",
    "Question: CVE?\nAnswer:",
    "Question: Which MITRE ATT&CK technique is T1059, the command and scripting interpreter, used by "
    "ransomware and malware for execution?\nA. yes\nB. no\nC. maybe\nD. never\nAnswer:",
    "Answer:",
    "Question: phishing\nA. A\nB. B\nAnswer:",
]
CHOICES = [" A", " B", " C", " D"]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir) -> HFModel:
    return load_model(f"hf:{tiny_llama_dir}", dtype="fp32", batch_size=16, threads=1)


@pytest.fixture(scope="module")
def hf_ref(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    return m, AutoTokenizer.from_pretrained(tiny_llama_dir)


def _ref_next_logprobs(ref, ids: list[int]) -> torch.Tensor:
    m, _ = ref
    with torch.no_grad():
        return torch.log_softmax(m(torch.tensor([ids])).logits[0, -1].float(), -1)


def _ids(tok, text, special):
    return tok(text, add_special_tokens=special)["input_ids"]


@pytest.mark.parametrize("mode", ["shared", "expand"])
@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_choice_logprobs_cached_equals_full_forward(tiny, hf_ref, batch_size, mode):
    tiny.batch_size = batch_size
    tiny._shared_attention = mode == "shared"
    tiny.clear_prefix_cache()
    _, tok = hf_ref
    targets = [_ids(tok, c, False) for c in CHOICES]
    assert all(len(t) == 1 for t in targets)
    got = tiny.choice_logprobs(CONTEXTS, CHOICES, prefix=PREFIX)
    assert len(got) == len(CONTEXTS)
    for ctx, row in zip(CONTEXTS, got):
        ref = _ref_next_logprobs(hf_ref, _ids(tok, PREFIX + ctx, True))
        assert row == pytest.approx([float(ref[t[0]]) for t in targets], abs=1e-4)
    tiny.batch_size = 16
    tiny._shared_attention = True


def test_prefix_cache_reused_and_matches_uncached(tiny):
    tiny.clear_prefix_cache()
    a = tiny.choice_logprobs(CONTEXTS[:2], CHOICES, prefix=PREFIX)
    entry = tiny._prefixes[PREFIX.rstrip()]  # trailing whitespace goes with the suffixes
    b = tiny.choice_logprobs(CONTEXTS[2:], CHOICES, prefix=PREFIX)
    assert tiny._prefixes[PREFIX.rstrip()] is entry and len(tiny._prefixes) == 1
    tiny.prefix_cache_enabled = False
    try:
        c = tiny.choice_logprobs(CONTEXTS, CHOICES, prefix=PREFIX)
    finally:
        tiny.prefix_cache_enabled = True
    for x, y in zip(a + b, c):
        assert x == pytest.approx(y, abs=1e-4)


def test_choice_logprobs_without_prefix(tiny, hf_ref):
    _, tok = hf_ref
    got = tiny.choice_logprobs(CONTEXTS, CHOICES)
    for ctx, row in zip(CONTEXTS, got):
        ref = _ref_next_logprobs(hf_ref, _ids(tok, ctx, True))
        assert row == pytest.approx([float(ref[_ids(tok, c, False)[0]]) for c in CHOICES], abs=1e-4)


def test_empty_context_scores_after_prefix(tiny, hf_ref):
    _, tok = hf_ref
    got = tiny.choice_logprobs(["", CONTEXTS[1]], CHOICES, prefix=PREFIX)
    ref = _ref_next_logprobs(hf_ref, _ids(tok, PREFIX, True))
    assert got[0] == pytest.approx([float(ref[_ids(tok, c, False)[0]]) for c in CHOICES], abs=1e-4)


def _manual_loglik(ref, ctx_ids, cont_ids):
    m, _ = ref
    ids = ctx_ids + cont_ids
    with torch.no_grad():
        lp = torch.log_softmax(m(torch.tensor([ids])).logits[0].float(), -1)
    total, greedy = 0.0, True
    for j, t in enumerate(cont_ids):
        pos = len(ctx_ids) - 1 + j
        total += float(lp[pos, t])
        greedy &= int(lp[pos].argmax()) == t
    return total, greedy


@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_loglikelihood_equals_manual_sum(tiny, hf_ref, prefix):
    _, tok = hf_ref
    assert tiny._shared_attention and tiny.describe()["prefix_attention"] == "shared"
    reqs = [(CONTEXTS[0], " A. a query attack"), (CONTEXTS[1], " Common Vulnerabilities and Exposures"),
            (CONTEXTS[2] + " ", "A"), (CONTEXTS[3], " B")]
    got = tiny.loglikelihood(reqs, prefix=prefix)
    for (ctx, cont), (lp, greedy) in zip(reqs, got):
        n = len(ctx) - len(ctx.rstrip(" "))
        if n:
            ctx, cont = ctx[:-n], ctx[-n:] + cont
        ctx_ids = _ids(tok, prefix + ctx, True)  # the joint tokenization
        ref_lp, ref_greedy = _manual_loglik(hf_ref, ctx_ids, _ids(tok, cont, False))
        assert lp == pytest.approx(ref_lp, abs=1e-3)
        assert greedy == ref_greedy


def test_multi_token_choices_use_loglikelihood(tiny):
    choices = [" SQL injection attack", " B"]
    got = tiny.choice_logprobs(CONTEXTS[:2], choices, prefix=PREFIX)
    ll = tiny.loglikelihood([(c, ch) for c in CONTEXTS[:2] for ch in choices], prefix=PREFIX)
    assert [x for row in got for x in row] == pytest.approx([x for x, _ in ll], abs=1e-5)


def test_bad_inputs(tiny):
    with pytest.raises(InputError, match="continuation"):
        tiny.loglikelihood([("ctx", "")])
    with pytest.raises(ValueError):
        tiny.choice_logprobs(["x"], [])


def test_long_context_is_left_truncated(tiny):
    long_ctx = "word " * 3000 + "Answer:"
    (row,) = tiny.choice_logprobs([long_ctx], CHOICES)
    assert all(x < 0 for x in row)


def test_greedy_generation_matches_transformers(tiny, hf_ref):
    m, tok = hf_ref
    prompts = ["The capital of France is", "Security", "A much longer prompt about ransomware and phishing: "]
    got = tiny.generate(prompts, GenerationConfig(max_new_tokens=8))
    for p, g in zip(prompts, got):
        ids = tok(p, return_tensors="pt")
        ref = m.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        assert g == tok.decode(ref[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_stop_strings_cut_output(tiny):
    free = tiny.generate(["Question: what is malware?"], GenerationConfig(max_new_tokens=16))[0]
    assert len(free) > 6
    stop = free[3:6]
    cut = tiny.generate(["Question: what is malware?"], GenerationConfig(max_new_tokens=16, stop=[stop]))[0]
    assert cut == free[: free.find(stop)]
    assert cut_at_stop("abc\nAnswer: X\n", ["\n\n", "\n"]) == "abc"
    assert cut_at_stop("abc", []) == "abc"


def test_seeded_sampling_reproducible(tiny):
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=0.95, seed=7)
    prompts = ["Threat actors", "The attacker"]
    a = tiny.generate(prompts, cfg)
    b = tiny.generate(prompts, cfg)
    c = tiny.generate(prompts, GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=0.95, seed=8))
    assert a == b
    assert a != c


def test_chat_template_applied(tiny, hf_ref):
    m, tok = hf_ref
    msgs = [{"role": "user", "content": "What is XSS?"}]
    text = tiny.apply_chat_template(msgs)
    assert "<|im_start|>user\nWhat is XSS?<|im_end|>" in text and text.rstrip().endswith("assistant")
    assert tiny.capabilities.chat_template
    got = tiny.generate([msgs], GenerationConfig(max_new_tokens=6))[0]
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    ref = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                     pad_token_id=tok.pad_token_id)
    assert got == tok.decode(ref[0, ids.shape[1]:], skip_special_tokens=True)


def test_parity_with_transformers_and_describe(tiny, hf_ref, tiny_llama_dir):
    m, tok = hf_ref
    ids = torch.tensor([tok("Parity check: CVE-2021-44228", add_special_tokens=True)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(tiny.model(ids).logits, m(ids).logits)
    d = tiny.describe()
    assert d["backend"] == "hf" and d["dtype"] == "float32" and d["spec"] == f"hf:{tiny_llama_dir}"
    assert len(d["weights_sha256"]["model.safetensors"]) == 64
    caps = tiny.capabilities
    assert caps.choice_logprobs and caps.loglikelihood and caps.prefix_cache and caps.generate


def test_dtype_resolution():
    assert resolve_dtype("fp32") is torch.float32
    assert resolve_dtype("bf16") is torch.bfloat16
    assert resolve_dtype("auto") in (torch.bfloat16, torch.float32)
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int3")


def test_prefix_attention_option(tiny_llama_dir):
    m = load_model(f"hf:{tiny_llama_dir}", dtype="fp32", threads=1, prefix_attention="expand")
    assert m.describe()["prefix_attention"] == "expand"
    with pytest.raises(ValueError, match="auto, shared or expand"):
        load_model(f"hf:{tiny_llama_dir}", prefix_attention="fast")


def test_bf16_model_scores(tiny_llama_dir):
    m = load_model(f"hf:{tiny_llama_dir}", dtype="bf16", threads=1)
    assert m.describe()["dtype"] == "bfloat16"
    rows = m.choice_logprobs(CONTEXTS[:2], CHOICES, prefix=PREFIX)
    assert all(len(r) == 4 and all(x <= 0 for x in r) for r in rows)


def test_portable_shared_prefix_attention(tiny, hf_ref, monkeypatch):
    """The fp32 fallback used off-CPU gives the same scores as the full forward."""
    from secfoundry.models import prefix_attention

    monkeypatch.setattr(prefix_attention, "_flash_cpu", lambda: None)
    _, tok = hf_ref
    tiny.clear_prefix_cache()
    got = tiny.choice_logprobs(CONTEXTS, CHOICES, prefix=PREFIX)
    for ctx, row in zip(CONTEXTS, got):
        ref = _ref_next_logprobs(hf_ref, _ids(tok, PREFIX + ctx, True))
        assert row == pytest.approx([float(ref[_ids(tok, c, False)[0]]) for c in CHOICES], abs=1e-4)
