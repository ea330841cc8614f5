from __future__ import annotations

import json

from secfoundry.experiment import heldout_perplexities, render_markdown, verdicts

from .conftest import make_shards


def _summary():
    bench = lambda s: {"ctibench-mcq": {"score": s, "ci95": [s - 0.02, s + 0.02], "n": 2495, "n_valid": 2495}}
    return {"base": {"ppl": {"security_ppl": 10.0, "general_ppl": 20.0}, "bench": bench(0.30)},
            "cpt": {"ppl": {"security_ppl": 7.5, "general_ppl": 20.6}, "bench": bench(0.34)},
            "train": {"steps": 10, "tokens": 40960, "final_loss": 2.5}, "command": "secfoundry experiment replicate"}


def test_verdicts_and_markdown(tmp_path):
    v = {name: ok for name, _, _, ok in verdicts(_summary())}
    assert v == {"held-out security perplexity": True, "general perplexity": True, "CTIBench-MCQ": True}
    m = tmp_path / "metrics.jsonl"
    m.write_text("\n".join(json.dumps(r) for r in [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5},
                                                    {"step": 2, "eval_security_loss": 2.6}]))
    md = render_markdown(_summary(), m)
    assert "| held-out security perplexity | 10.000 | 7.500 | -25.0% |" in md
    assert "+4.00 points" in md and (tmp_path / "loss_curve.png").stat().st_size > 1000


def test_heldout_perplexities_split_security_general(tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from .conftest import TINY_LLAMA

    model_dir = tmp_path / "m"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**TINY_LLAMA)).save_pretrained(model_dir)
    sh = make_shards(tmp_path / "s", {"attack": 8, "general:wikitext": 8}, seq_len=32)
    ppl = heldout_perplexities(model_dir, sh, seq_len=16, batch=2)
    assert set(ppl) == {"security_loss", "security_ppl", "general_loss", "general_ppl"}
    assert 100 < ppl["security_ppl"] < 2000  # random model over a 512 vocabulary
