from __future__ import annotations

import numpy as np
import pytest

from secfoundry.corpus.prepare.decontaminate import Decontaminate, DecontaminateConfig
from secfoundry.corpus.prepare.mix import Mix, MixConfig, copies
from secfoundry.corpus.prepare.pack import PackConfig, pack_partition, split_of, write_manifest
from secfoundry.corpus.prepare.shards import Manifest, PackedSource
from secfoundry.core.documents import Document

from .helpers import fit_and_run


def test_decontaminate_ngram_cve_and_date(tmp_path, bench_dir):
    from secfoundry.eval.benchmarks import get_task

    mcq = get_task("ctibench-mcq").load(bench_dir)
    q = next(it.question for it in mcq if len(it.question.split()) > 20)
    rcm = get_task("ctibench-rcm").load(bench_dir)
    import re

    cve = re.search(r"CVE-\d{4}-\d+", rcm[0].meta.get("url", "") + rcm[0].question).group(0)
    docs = [
        Document(id="clean", text="A clean paragraph about firewalls.\n\nAnother clean paragraph.", source="web"),
        Document(id="leak", text=f"Intro paragraph that is fine, about network segmentation and firewall rule reviews.\n\n{q}\n\n"
                 "Outro paragraph on patch cadence, asset inventories and backups.", source="web"),
        Document(id="cve", text=f"{cve} is a use-after-free.", source="cve"),
        Document(id="new", text="Fresh advisory.", source="osv", metadata={"published": "2025-02-01T00:00:00"}),
    ]
    step = Decontaminate(DecontaminateConfig(benchmarks=["ctibench-mcq", "ctibench-rcm"], data_dir=str(bench_dir),
                                             date_cutoff="2024-06-01"))
    kept, dropped = fit_and_run(step, docs, tmp_path)
    by_id = {d.id: d for d in kept}
    assert set(by_id) == {"clean", "leak"}
    assert q not in by_id["leak"].text and "Intro paragraph" in by_id["leak"].text
    assert [e["benchmarks"] for e in by_id["leak"].metadata["decontaminated"]] == [["ctibench-mcq"]]
    reasons = {d.doc.id: d.reason for d in dropped}
    assert reasons == {"cve": "decontam:cve:ctibench-rcm", "new": "decontam:date"}


def test_mix_upsamples_and_sets_replay_ratio(tmp_path):
    docs = [Document(id=f"a{i}", text="x" * 100, source="attack") for i in range(50)]
    docs += [Document(id=f"c{i}", text="y" * 100, source="cwe") for i in range(50)]
    docs += [Document(id=f"g{i}", text="z" * 100, source="general:wikitext") for i in range(200)]
    step = Mix(MixConfig(weights={"attack": 3.0}, replay_ratio=0.25))
    kept, dropped = fit_and_run(step, docs, tmp_path)
    n = {s: sum(d.source == s for d in kept) for s in ("attack", "cwe", "general:wikitext")}
    assert n["attack"] == 150 and n["cwe"] == 50
    share = n["general:wikitext"] / sum(n.values())
    assert abs(share - 0.25) < 0.04
    assert all(d.reason == "mix:subsampled" for d in dropped)
    assert copies("x", 1.5, 0) in (1, 2) and copies("x", 1.5, 0) == copies("x", 1.5, 0)


def test_pack_roundtrip_split_and_resume(tmp_path, tiny_llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    rows = [{"id": f"d{i}", "text": f"Document {i} about CVE-2024-{i:04d} and lateral movement. " * 5,
             "source": "attack" if i % 2 else "cwe", "license": "MIT", "version": "18.1"} for i in range(300)]
    rows.append({"id": "d1#r1", "text": rows[1]["text"], "source": "attack", "license": "MIT", "version": "18.1"})
    cfg = PackConfig(seq_len=64, test_fraction=0.05)
    s1 = pack_partition(rows[:150], tmp_path, "p0", cfg, tokenizer=tok)
    pack_partition(rows[150:], tmp_path, "p1", cfg, tokenizer=tok)
    again = pack_partition(rows[:150], tmp_path, "p0", cfg, tokenizer=tok)  # done: skipped
    assert again == s1
    man = write_manifest(tmp_path, cfg)
    man2 = Manifest.load(tmp_path)
    assert man2.seq_len == 64 and man2.dtype == "uint16"
    assert set(man2.splits) == {"train", "test"}
    src = PackedSource(tmp_path, man2, "train", "attack")
    assert len(src) == man.splits["train"]["attack"].n_seqs > 0
    row = src[0]
    assert row.shape == (64,) and row.max() < len(tok)
    # EOS separates documents; the decoded stream is the documents' text.
    total_eos = sum(int((r == tok.eos_token_id).sum()) for r in src)
    assert total_eos > 0
    assert split_of("d1#r1".split("#r")[0], 0.05) == split_of("d1", 0.05)
    assert "MIT" in man2.splits["train"]["attack"].licenses
    with pytest.raises(FileNotFoundError):
        Manifest.load(tmp_path / "nope")


def test_pack_step_keeps_small_test_splits(tmp_path, tiny_llama_dir):
    from secfoundry.corpus.prepare.pack import PackShards, PackShardsConfig

    docs = [Document(id=f"g{i}", text=f"General text number {i}, about gardens and rivers. " * 3, source="general:wiki")
            for i in range(400)]
    step = PackShards(PackShardsConfig(tokenizer=str(tiny_llama_dir), seq_len=64, test_fraction=0.05,
                                       out=str(tmp_path / "shards")))
    kept, dropped = fit_and_run(step, docs, tmp_path, parts=8)
    assert len(kept) == 400 and not dropped
    man = Manifest.load(tmp_path / "shards")
    # ~20 test documents spread over 8 partitions: packed together they fill rows.
    assert man.splits["test"]["general:wiki"].n_seqs >= 5
    assert man.splits["train"]["general:wiki"].n_docs + man.splits["test"]["general:wiki"].n_docs == 400


def test_raw_tokenizer_matches_autotokenizer(tiny_llama_dir):
    """Packing loads tokenizer.json with `tokenizers` directly (no transformers import per
    worker); ids, EOS/BOS and vocabulary size must be AutoTokenizer's."""
    from transformers import AutoTokenizer

    from secfoundry.corpus.prepare.pack import RawTokenizer, load_tokenizer

    ref = AutoTokenizer.from_pretrained(tiny_llama_dir)
    raw = load_tokenizer(str(tiny_llama_dir))
    assert isinstance(raw, RawTokenizer)
    texts = ["CVE-2024-3094: xz backdoor in liblzma <|im_end|> done", "  def f(x):\n\treturn x  # ünïcode ✓",
             "", "mimikatz.exe \"sekurlsa::logonpasswords\" exit"]
    assert raw(texts)["input_ids"] == ref(texts, add_special_tokens=False)["input_ids"]
    assert (raw.eos_token_id, raw.bos_token_id, len(raw)) == (ref.eos_token_id, ref.bos_token_id, len(ref))
