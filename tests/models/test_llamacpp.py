"""llama-cpp-python backend on the SmolLM2 GGUF, checked against the hf backend.

Skipped when llama-cpp-python is not installed (it is the optional extra [llamacpp]).
"""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest

from secfoundry.models import GenerationConfig, load_model

PREFIX = "The following are multiple choice questions about computer security.\n\n"
CTXS = ["What does XSS stand for?\nA. Cross-site scripting\nB. Extra style sheets\nC. X server\nD. None\nAnswer:",
        "Which port does HTTPS use by default?\nA. 80\nB. 443\nC. 22\nD. 21\nAnswer:",
        "What is phishing?\nA. A fishing sport\nB. A social engineering attack\nC. A CPU\nD. A font\nAnswer:"]
LETTERS = [" A", " B", " C", " D"]
needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama-cpp-python is not installed (optional extra [llamacpp])")


def test_missing_llama_cpp_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ImportError, match=r"secfoundry\[llamacpp\]"):
        load_model(f"llamacpp:{gguf}")


@pytest.fixture(scope="module")
def pair(smollm2_dir):
    from secfoundry.models.embedded import gguf_path

    lc = load_model(f"llamacpp:{gguf_path()}", threads=1, n_ctx=1024)
    hf = load_model("smollm2-135m-instruct", dtype="fp32", threads=1)
    yield lc, hf
    lc.close()


@pytest.mark.e2e
@needs_llama
def test_tokenization_matches_hf(pair):
    lc, hf = pair
    for text in [PREFIX + CTXS[0], " A", "CVE-2021-44228 in Log4j\n\tx"]:
        assert lc._encode(text, bos=False) == hf.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.e2e
@needs_llama
def test_letter_scoring_agrees_with_hf(pair):
    lc, hf = pair
    a = lc.choice_logprobs(CTXS, LETTERS, prefix=PREFIX)
    b = hf.choice_logprobs(CTXS, LETTERS, prefix=PREFIX)
    argmax = lambda rows: [max(range(4), key=r.__getitem__) for r in rows]  # noqa: E731
    assert argmax(a) == argmax(b)
    # Q4_1 weights in both, but llama.cpp also quantizes activations (q8): raw letter log-probs
    # differ by up to ~0.6 nat on these prompts, the distribution over the 4 letters by up to ~0.4
    for x, y in zip(a, b):
        assert x == pytest.approx(y, abs=1.0)
        nx = [v - math.log(sum(math.exp(u) for u in x)) for v in x]
        ny = [v - math.log(sum(math.exp(u) for u in y)) for v in y]
        assert nx == pytest.approx(ny, abs=0.5)
    (l1, g1), (l2, g2) = lc.loglikelihood([("The capital of France is", " Paris")])[0], \
        hf.loglikelihood([("The capital of France is", " Paris")])[0]
    assert l1 == pytest.approx(l2, abs=0.1) and g1 == g2
    # single-token choices from the next-token distribution == the continuation path
    ll = lc.loglikelihood([(c, " A") for c in CTXS], prefix=PREFIX)
    assert [r[0] for r in a] == pytest.approx([x for x, _ in ll], abs=1e-3)
    # a second call reuses the cached prefix and gives the same numbers
    again = lc.choice_logprobs(CTXS, LETTERS, prefix=PREFIX)
    for x, y in zip(again, a):
        assert x == pytest.approx(y, abs=1e-4)


@pytest.mark.e2e
@needs_llama
def test_generation_agrees_with_hf(pair):
    lc, hf = pair
    msgs = [{"role": "user", "content": "What does XSS stand for?"}]
    assert lc.apply_chat_template(msgs) == hf.apply_chat_template(msgs)
    cfg = GenerationConfig(max_new_tokens=5)
    out_lc, out_hf = lc.generate([msgs], cfg)[0], hf.generate([msgs], cfg)[0]
    assert out_lc.strip() and out_lc.split()[0] == out_hf.split()[0]
    cut = lc.generate(["The capital of France is"], GenerationConfig(max_new_tokens=12, stop=["."]))[0]
    assert "." not in cut
    s = GenerationConfig(max_new_tokens=8, temperature=1.0, seed=5)
    assert lc.generate(["Malware is"], s) == lc.generate(["Malware is"], s)
    d = lc.describe()
    assert d["backend"] == "llamacpp" and len(next(iter(d["weights_sha256"].values()))) == 64
