from __future__ import annotations

import json

from secfoundry.experiment.replicate import heldout_perplexities
from secfoundry.experiment.report import render_markdown, verdicts

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


def test_rotation_check_decides_the_ctibench_verdict():
    """A raw CTIBench gain that the rotation check does not confirm is position bias: not met."""
    rot = lambda mean, every: {"variant_scores": {"original": mean + 11, "rot1": mean - 9, "rot2": mean - 8, "rot3": mean + 6},
                               "variant_mean": mean, "correct_in_every_variant": every, "n": 400}
    s = _summary()
    s["base"]["rotation"], s["cpt"]["rotation"] = rot(24.94, 0.0), rot(25.00, 0.0)
    v = {name: ok for name, _, _, ok in verdicts(s)}
    assert v["CTIBench-MCQ"] is True and v["CTIBench-MCQ, rotation-averaged (first 400)"] is False
    md = render_markdown(s)
    assert "| ctibench-mcq rotation-averaged, first 400 | 24.94 (rotations 35.9 / 15.9 / 16.9 / 30.9; right in all: 0.0%)" in md
    assert "| CTIBench-MCQ, rotation-averaged (first 400) | +0.06 points | +3 points or more | no |" in md
    s["cpt"]["rotation"] = rot(28.5, 3.0)
    assert {n: ok for n, _, _, ok in verdicts(s)}["CTIBench-MCQ, rotation-averaged (first 400)"] is True


def test_replicate_runs_the_rotation_check_with_the_same_prompts(tmp_path, monkeypatch):
    import secfoundry.eval.runner as runner
    from secfoundry.experiment.replicate import ReplicateConfig, _rotation_check

    seen = []

    class _Run:
        results = {"ctibench-mcq": {"permute": {"variant_mean": 25.0}}}

    monkeypatch.setattr(runner, "run_eval", lambda rc: seen.append(rc) or _Run())
    cfg = ReplicateConfig(permute_limit=400)
    assert _rotation_check(tmp_path / "m", cfg, tmp_path / "p") == {"variant_mean": 25.0}
    rc = seen[0]
    assert (rc.benchmarks, rc.limit, rc.permute, rc.shots, rc.mode, rc.protocol, rc.instruct) == \
        (["ctibench-mcq"], 400, True, 5, "logprob", "faith", False)
    assert _rotation_check(tmp_path / "m", ReplicateConfig(permute_limit=0), tmp_path / "p") is None
    assert _rotation_check(tmp_path / "m", ReplicateConfig(benchmarks=["seceval"]), tmp_path / "p") is None


def test_report_command_writes_markdown_and_html(tmp_path):
    from typer.testing import CliRunner

    from secfoundry.cli import app

    (tmp_path / "train").mkdir()
    (tmp_path / "summary.json").write_text(json.dumps(_summary()))
    (tmp_path / "train" / "metrics.jsonl").write_text("\n".join(json.dumps({"step": i, "loss": 3.0 - i / 10}) for i in range(5)))
    res = CliRunner().invoke(app, ["experiment", "report", str(tmp_path)])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "report.html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html and "CTIBench-MCQ" in html
    assert (tmp_path / "report.md").read_text().startswith("## Replication experiment")
    assert CliRunner().invoke(app, ["experiment", "report", str(tmp_path / "nope")]).exit_code != 0


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


def test_general_heldout_skips_what_the_corpus_used(tmp_path, tiny_llama_dir, monkeypatch):
    import secfoundry.corpus.prepare.pack as pack
    from secfoundry.corpus.prepare.shards import Manifest
    from secfoundry.experiment.replicate import general_heldout

    gdir = tmp_path / "general"
    gdir.mkdir()
    (gdir / "wikitext2-x.jsonl").write_text("\n".join(json.dumps({"text": f"Article {i}. " * 40}) for i in range(30)))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"inputs:\n  - kind: general\n    path: {gdir}\n    max_docs: 10\n")
    monkeypatch.setattr(pack, "load_tokenizer", lambda spec: __import__("transformers").AutoTokenizer.from_pretrained(tiny_llama_dir))
    out = general_heldout(recipe, tmp_path / "held", seq_len=32, take=5)
    man = Manifest.load(out)
    assert man.splits["test"]["general:wikitext"].n_docs == 5 and "train" not in man.splits


def test_eval_uses_an_absolute_model_path(tmp_path, monkeypatch):
    """A relative --out (the default, runs/replicate) must still give a valid model spec."""
    import secfoundry.eval.runner as runner
    from secfoundry.experiment.replicate import ReplicateConfig, _eval

    seen = {}

    class _Run:
        results = {"ok": True}

    def fake_run_eval(rc):
        seen["model"] = rc.model
        return _Run()

    monkeypatch.setattr(runner, "run_eval", fake_run_eval)
    monkeypatch.chdir(tmp_path)
    assert _eval(__import__("pathlib").Path("runs/x/train/final"), ReplicateConfig(), tmp_path / "e") == {"ok": True}
    assert seen["model"] == f"hf:{tmp_path / 'runs/x/train/final'}"


def test_lever_runs_reuse_the_reference_base_results(tmp_path):
    import pytest

    from secfoundry.experiment.replicate import ReplicateConfig, _copy_base_results, replicate

    ref, out = tmp_path / "ref", tmp_path / "lever"
    (ref / "eval-base").mkdir(parents=True)
    (ref / "permute-base").mkdir()
    (ref / "base_ppl.json").write_text('{"security_ppl": 13.6}')
    (ref / "eval-base" / "samples.jsonl").write_text('{"id": 1}\n')
    out.mkdir()
    _copy_base_results(ref, out)
    assert json.loads((out / "base_ppl.json").read_text()) == {"security_ppl": 13.6}
    assert (out / "eval-base" / "samples.jsonl").exists() and (out / "permute-base").is_dir()
    # a copy, not a link: the lever's harness appending to its answers leaves the reference alone
    with (out / "eval-base" / "samples.jsonl").open("a") as f:
        f.write('{"id": 2}\n')
    assert (ref / "eval-base" / "samples.jsonl").read_text() == '{"id": 1}\n'
    with pytest.raises(FileNotFoundError, match="--base-from"):
        _copy_base_results(tmp_path / "nothing", out)
    with pytest.raises(FileNotFoundError, match="--corpus"):
        replicate(ReplicateConfig(out=tmp_path / "x", corpus_dir=tmp_path / "no-corpus", results_md=None), say=lambda *_: None)


def test_option_scoring_rows_use_a_paired_comparison():
    from secfoundry.experiment.report import paired_delta

    base = {str(i): [i % 4 == 0, i % 2 == 0] for i in range(400)}   # 25% / 50%
    cpt = {str(i): [i % 4 == 0, i % 2 == 0 or i % 5 == 1] for i in range(400)}  # acc_norm +10 points
    d, lo, hi, n = paired_delta(base, cpt, 1)
    assert n == 400 and d == 10.0 and 6 < lo < 10 < hi < 14
    assert paired_delta(base, base, 0)[:3] == (0.0, 0.0, 0.0)
    s = _summary()
    s["base"]["options"] = {"accuracy": 25.0, "acc_norm": 50.0, "n": 400, "items": base}
    s["cpt"]["options"] = {"accuracy": 25.0, "acc_norm": 60.0, "n": 400, "items": cpt}
    md = render_markdown(s)
    assert "| ctibench-mcq option texts, acc_norm (per byte), first 400 | 50.00 | 60.00 | +10.00 [" in md
    assert "| ctibench-mcq option texts, accuracy, first 400 | 25.00 | 25.00 | +0.00 [+0.00, +0.00] paired |" in md


def test_option_scoring_reads_per_item_picks(tmp_path, monkeypatch):
    import secfoundry.eval.runner as runner
    from secfoundry.experiment.replicate import ReplicateConfig, _option_scoring

    out = tmp_path / "o"

    class _Run:
        results = {"ctibench-mcq": {"accuracy": 50.0, "acc_norm": 100.0, "n": 2}}

    def fake(rc):
        assert rc.score_options and rc.limit == 400 and rc.shots == 5 and not rc.permute
        out.mkdir()
        (out / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in [
            {"benchmark": "ctibench-mcq", "trial": 0, "item_id": "0", "correct": True, "lenient": "B", "gold": "B"},
            {"benchmark": "ctibench-mcq", "trial": 0, "item_id": "1", "correct": False, "lenient": "C", "gold": "C"}]))
        return _Run()

    monkeypatch.setattr(runner, "run_eval", fake)
    got = _option_scoring(tmp_path / "m", ReplicateConfig(), out)
    assert got == {"accuracy": 50.0, "acc_norm": 100.0, "n": 2, "items": {"0": [True, True], "1": [False, True]}}
    assert _option_scoring(tmp_path / "m", ReplicateConfig(option_limit=0), out) is None
