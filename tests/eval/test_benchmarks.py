"""Benchmark loaders (counts, filters, malformed files), requests under each protocol, data files."""

from __future__ import annotations

import hashlib
import http.server
import json
import pickle
import shutil
import threading
from pathlib import Path

import pytest

from secfoundry.core.errors import InputError
from secfoundry.eval import data as bdata
from secfoundry.eval.benchmarks import get_task, list_tasks, parse_spec
from secfoundry.eval.benchmarks.ctibench import SYSTEM, mcq_prompt
from secfoundry.eval.task import Item, Parsed, Protocol, Response

COUNTS = {
    "ctibench-mcq": 2500, "ctibench-rcm": 1000, "ctibench-rcm-2021": 1000, "ctibench-vsp": 1000,
    "ctibench-ate": 60, "ctibench-taa": 50, "cybermetric-80": 80, "cybermetric-500": 500,
    "secbench-mcq": 2730, "secbench-mcq-eng": 587, "seceval": 2189, "seceval-single": 1255,
}


def test_registry_names():
    assert set(COUNTS) | {"cybermetric-2000", "cybermetric-10000", "mmlu", "secbench-mcq-eng-595",
                          "secbench-mcq-eng-reasoning", "secbench-mcq-eng-dedup", "secbench-saq"} == set(list_tasks())
    assert parse_spec("mmlu:subjects=a|b;split=dev") == ("mmlu", {"subjects": ["a", "b"], "split": "dev"})
    with pytest.raises(KeyError):
        get_task("nope")
    with pytest.raises(ValueError):
        get_task("ctibench-mcq", language="English")  # options are checked


@pytest.mark.parametrize("name,count", sorted(COUNTS.items()))
def test_counts(bench_dir: Path, name: str, count: int):
    items = get_task(name).load(bench_dir)
    assert len(items) == count
    assert len({it.id for it in items}) == count


def test_filters_and_golds(bench_dir: Path):
    assert len(get_task("secbench-mcq:language=English").load(bench_dir)) == 661
    assert len(get_task("secbench-mcq", language="zh").load(bench_dir)) == 2069
    eng = get_task("secbench-mcq-eng").load(bench_dir)
    assert all(len(it.gold) == 1 and it.gold in "ABCD" and len(it.options) == 4 for it in eng)
    multi = get_task("seceval").load(bench_dir)
    assert sum(len(it.gold) > 1 for it in multi) == 927  # 925 + two "AA" and sum(it.gold == "" for it in multi) == 7
    mcq = get_task("ctibench-mcq").load(bench_dir)
    assert mcq[108].gold == "B"  # upstream "b", upper-cased like the authors' scorer
    taa = get_task("ctibench-taa").load(bench_dir)
    assert taa[0].gold == "SideCopy" and taa[5].gold == "APT19"  # stripped GT of the responses file
    ate = get_task("ctibench-ate").load(bench_dir)
    assert ate[0].gold == ["T1070", "T1071", "T1083", "T1573"]


def test_ctibench_prompt_template_matches_prompt_column(bench_dir: Path):
    """Permuted CTIBench questions are re-rendered with the authors' template."""
    items = get_task("ctibench-mcq").load(bench_dir)
    def norm(s: str) -> str:
        return " ".join(s.split())

    assert all(norm(mcq_prompt(it.question, it.options)) == norm(it.prompt) for it in items)
    assert sum(mcq_prompt(it.question, it.options) == it.prompt for it in items) == 2496


def test_faith_base_fewshot_prefix(bench_dir: Path):
    task = get_task("ctibench-mcq")
    items = task.load(bench_dir)
    proto = Protocol(name="faith", instruct=False, seed=7)
    shots0 = task.draw_shots(items, proto, 0)
    assert len(shots0) == 5 and shots0 == task.draw_shots(items, proto, 0)  # deterministic
    assert [s.id for s in shots0] != [s.id for s in task.draw_shots(items, proto, 1)]  # new shots per trial
    reqs = task.requests(items[:50], proto, 0, items)
    shot_ids = {s.id for s in shots0}
    assert not shot_ids & {r.item_id for r in reqs}  # shots are never asked
    prefixes = {r.prefix for r in reqs}
    assert len(prefixes) == 1
    prefix = prefixes.pop()
    assert prefix.startswith("The following are multiple choice questions about computer security.\n\n")
    assert prefix.endswith("\n\n") and prefix.count("\nAnswer: ") == 5
    r = reqs[0]
    assert isinstance(r.prompt, str) and r.prompt.endswith("\nD. " + items[0].options["D"] + "\nAnswer:")
    assert r.gen is not None and r.gen.stop == ["\n"]
    assert task.parse(items[0], r, Response(r.item_id, text=" B\n"), proto) == Parsed("B", "B", True)


def test_faith_instruct_zero_shot(bench_dir: Path):
    task = get_task("cybermetric-500")
    items = task.load(bench_dir)
    proto = Protocol(name="faith", instruct=True)
    assert task.draw_shots(items, proto, 0) == []
    reqs = task.requests(items[:3], proto, 0, items)
    msgs = reqs[0].prompt
    assert isinstance(msgs, list) and msgs[-1]["role"] == "user"
    assert "'Answer: $LETTER'" in msgs[-1]["content"] and items[0].question in msgs[-1]["content"]
    p = task.parse(items[0], reqs[0], Response(reqs[0].item_id, text="The correct answer is (A)."), proto)
    assert p.answer is None and p.lenient == "A" and not p.valid
    scored = task.score(items[:1], [p], proto)
    assert scored["accuracy"] == 0.0 and scored["lenient_accuracy"] == 100.0 and scored["parse_failures"] == 1


def test_logprob_permute_and_option_scoring(bench_dir: Path):
    task = get_task("ctibench-mcq")
    items = task.load(bench_dir)[:4]
    proto = Protocol(name="faith", mode="logprob", instruct=True, permute=True, shots=0)
    reqs = task.requests(items, proto, 0, items)
    assert len(reqs) == 16 and {r.variant for r in reqs} == {"", "rot1", "rot2", "rot3"}
    assert all(r.kind == "choice" and r.choices == [" A", " B", " C", " D"] for r in reqs)
    item = items[0]
    for r in [r for r in reqs if r.item_id == item.id]:
        # the model picks the displayed position of the gold option: mapped back it is the gold
        shown_gold = next(k for k, v in r.meta["mapping"].items() if v == item.gold)
        assert r.meta["options"][shown_gold] == item.options[item.gold]
        lps = [-0.1 if lab == shown_gold else -3.0 for lab in r.choice_labels]
        assert task.parse(item, r, Response(r.item_id, logprobs=lps), proto).answer == item.gold
    by_variant = {v: [Parsed(item.gold, item.gold, True)] for v in ("", "rot1", "rot2", "rot3")}
    by_variant["rot2"] = [Parsed("A" if item.gold != "A" else "B", None, True)]
    sv = task.score_variants([item], by_variant, proto)
    assert sv["consistency"] == 0.0 and sv["variant_scores"]["original"] == 100.0 and sv["variant_mean"] == 75.0
    opt = task.requests(items[:1], Protocol(name="faith", mode="logprob", score_options=True, shots=0), 0, items)[0]
    assert opt.choices == [" " + v for v in items[0].options.values()] and opt.choice_labels == list("ABCD")
    with pytest.raises(ValueError):
        get_task("seceval").requests(items[:1], Protocol(mode="logprob"), 0, [])


def test_official_requests(bench_dir: Path):
    cti = get_task("ctibench-rcm")
    items = cti.load(bench_dir)
    r = cti.requests(items[:1], Protocol(name="official", instruct=True), 0, items)[0]
    assert r.prompt == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": items[0].prompt}]
    text = "Analysis... CWE-20 is too generic.\nCWE-416"
    assert cti.parse(items[0], r, Response(r.item_id, text=text), Protocol(name="official")).answer == "CWE-416"
    faith = Protocol(name="faith")
    p = cti.parse(items[0], r, Response(r.item_id, text=text), faith)
    assert p.answer is None and p.lenient == "CWE-416"  # two different CWEs: not counted under FAITH
    assert cti.parse(items[0], r, Response(r.item_id, text="CWE-416\nCWE-416"), faith).answer == "CWE-416"
    assert len(cti.eligible(items, faith)) == 988 and len(get_task("ctibench-rcm-2021").eligible(
        get_task("ctibench-rcm-2021").load(bench_dir), faith)) == 957

    cm = get_task("cybermetric-80")
    cmi = cm.load(bench_dir)
    r = cm.requests(cmi[:1], Protocol(name="official"), 0, cmi)[0]
    assert r.prompt[0]["content"] == "You are a security expert who answers questions."
    assert "Always return in this format: 'ANSWER: X'" in r.prompt[1]["content"]
    assert cm.parse(cmi[0], r, Response(r.item_id, text="ANSWER: B"), Protocol(name="official")).answer == "B"

    se = get_task("seceval")
    sei = se.load(bench_dir)
    base = se.requests(sei[:2], Protocol(name="official", instruct=False), 0, sei)
    assert base[0].prefix == base[1].prefix and base[0].prefix.endswith("Answer: ABCD\n")
    assert base[0].prompt.startswith("Question: ") and "\n" not in base[0].prompt[:-1]
    p = se.parse(sei[1], base[1], Response(base[1].item_id, text=" C, A"), Protocol(name="official"))
    assert p.answer == "AC"


def test_vsp_ate_taa_scoring(bench_dir: Path):
    vsp = get_task("ctibench-vsp")
    items = vsp.load(bench_dir)[:2]
    off, faith = Protocol(name="official"), Protocol(name="faith")
    gold0 = items[0].gold
    parsed = [vsp.parse(items[0], None, Response("0", text=f"...\n{gold0}"), off),  # type: ignore[arg-type]
              vsp.parse(items[1], None, Response("1", text="I cannot tell."), off)]  # type: ignore[arg-type]
    s_off = vsp.score(items, parsed, off)
    assert s_off["score"] == 0.0 and s_off["n_valid"] == 1 and s_off["higher_is_better"] is False
    s_faith = vsp.score(items, parsed, faith)
    assert s_faith["score"] == 50.0  # 1 for the exact vector, 0 for the unparseable answer

    ate = get_task("ctibench-ate")
    ai = ate.load(bench_dir)[:1]
    p = ate.parse(ai[0], None, Response("0", text="...\nT1071, T1573, T1083, T1070.001"), off)  # type: ignore[arg-type]
    s = ate.score(ai, [p], off)
    assert s["exact_match"] == 100.0 and s["micro_f1"] == 100.0 and s["jaccard"] == 100.0

    taa = get_task("ctibench-taa")
    ti = taa.load(bench_dir)
    ps = [taa.parse(ti[0], None, Response("0", text="Threat actor: Transparent Tribe"), off),  # type: ignore[arg-type]
          taa.parse(ti[1], None, Response("1", text="No Such Group"), off)]  # type: ignore[arg-type]
    s = taa.score(ti[:2], ps, off)
    assert (s["correct"], s["score_plausible"]) == (0.0, 50.0)  # SideCopy is related to Transparent Tribe


def test_mmlu_from_generated_csv(tmp_path: Path):
    root = tmp_path / "mmlu"
    for split in ("dev", "test"):
        (root / split).mkdir(parents=True)
    rows = [["What is 2+2?", "3", "4", "5", "6", "B"], ['Which, with "quotes"?', "a", "b", "c", "d", "D"]]
    import csv

    for subj in ("computer_security", "astronomy"):
        for split in ("dev", "test"):
            with open(root / split / f"{subj}_{split}.csv", "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(rows)
    task = get_task("mmlu")
    items = task.load(tmp_path)
    assert len(items) == 4 and items[1].question == 'Which, with "quotes"?' and items[1].gold == "D"
    only = get_task("mmlu:subjects=computer_security").load(tmp_path)
    assert {it.meta["subject"] for it in only} == {"computer_security"}
    reqs = task.requests(only, Protocol(name="official", mode="logprob"), 0, only)
    assert reqs[0].prefix.startswith("The following are multiple choice questions (with answers) about "
                                      "computer security.\n\n") and reqs[0].prefix.endswith("Answer: D\n\n")
    faith_base = task.requests(only, Protocol(name="faith", instruct=False), 0, only)
    assert faith_base[0].prefix == reqs[0].prefix and faith_base[0].kind == "generate"
    faith_chat = task.requests(only, Protocol(name="faith", instruct=True), 0, only)
    assert isinstance(faith_chat[0].prompt, list) and faith_chat[0].prefix == ""
    with pytest.raises(InputError, match="not found"):
        get_task("mmlu", subjects="virology").load(tmp_path)
    (root / "test" / "computer_security_test.csv").write_text("q,a,b,c,d,Z\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        get_task("mmlu:subjects=computer_security").load(tmp_path)
    assert "computer_security_test.csv" in str(e.value) and "row 1" in str(e.value) and "'answer'" in str(e.value)


def _copy_family(bench_dir: Path, tmp_path: Path, family: str) -> Path:
    dst = tmp_path / "bench"
    shutil.copytree(bench_dir / family, dst / family)
    for p in (dst / family).rglob("*"):
        p.chmod(0o644 if p.is_file() else 0o755)
    (dst / family).chmod(0o755)
    return dst


def test_malformed_tsv_names_file_row_field(bench_dir: Path, tmp_path: Path):
    dst = _copy_family(bench_dir, tmp_path, "ctibench")
    f = dst / "ctibench" / "cti-mcq.tsv"
    lines = f.read_text(encoding="utf-8").split("\n")
    lines[5] = "\t".join(lines[5].split("\t")[:-2])  # data row 5 loses Prompt and GT
    f.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as e:
        get_task("ctibench-mcq").load(dst)
    msg = str(e.value)
    assert "cti-mcq.tsv" in msg and "row 5" in msg and "'Prompt'" in msg

    lines = (bench_dir / "ctibench" / "cti-mcq.tsv").read_text(encoding="utf-8").split("\n")
    cells = lines[3].split("\t")
    cells[-1] = "E"
    lines[3] = "\t".join(cells)
    f.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match=r"row 3, field 'GT'"):
        get_task("ctibench-mcq").load(dst)

    r = dst / "ctibench" / "cti-vsp.tsv"
    rl = r.read_text(encoding="utf-8").split("\n")
    cells = rl[2].split("\t")
    cells[-1] = "CVSS:3.1/AV:Q"
    rl[2] = "\t".join(cells)
    r.write_text("\n".join(rl), encoding="utf-8")
    with pytest.raises(InputError, match=r"cti-vsp.tsv, row 2, field 'GT'"):
        get_task("ctibench-vsp").load(dst)


def test_malformed_json_files(bench_dir: Path, tmp_path: Path):
    dst = _copy_family(bench_dir, tmp_path, "seceval")
    f = dst / "seceval" / "questions.json"
    doc = json.loads(f.read_text(encoding="utf-8"))
    doc[10]["choices"][2] = "no letter here"
    f.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError, match=r"questions.json, row \[10\], field 'choices'"):
        get_task("seceval").load(dst)
    f.write_text("[{", encoding="utf-8")
    with pytest.raises(InputError, match="invalid JSON"):
        get_task("seceval").load(dst)

    dst2 = _copy_family(bench_dir, tmp_path / "b", "secbench")
    f = dst2 / "secbench" / "MCQs_2730.jsonl"
    lines = f.read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[6])
    rec["label"] = "Q"
    lines[6] = json.dumps(rec, ensure_ascii=False)
    f.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match=r"MCQs_2730.jsonl, row 7, field 'label'"):
        get_task("secbench-mcq").load(dst2)

    dst3 = _copy_family(bench_dir, tmp_path / "c", "cybermetric")
    f = dst3 / "cybermetric" / "CyberMetric-80-v1.json"
    doc = json.loads(f.read_text(encoding="utf-8"))
    del doc["questions"][3]["solution"]
    f.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError, match=r"row questions\[3\], field 'solution'"):
        get_task("cybermetric-80").load(dst3)


# --- data files: pinned downloads ------------------------------------------------------------

class _Server:
    def __init__(self, files: dict[str, bytes]):
        outer = files

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = outer.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                if body is not None:
                    self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_download_verify_and_cache(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SECFOUNDRY_OFFLINE", raising=False)
    body = b'{"questions": []}'
    evil = pickle.dumps(shutil.rmtree)  # a pickle that names a global: must be refused
    srv = _Server({"/ok.json": body, "/graph.pickle": pickle.dumps({"apt29": ["cozy bear"]}), "/evil.pickle": evil})
    try:
        empty = tmp_path / "empty"
        empty.mkdir()
        good = bdata.DataFile("x/ok.json", srv.url + "/ok.json", hashlib.sha256(body).hexdigest())
        p = bdata.resolve(good, empty)
        assert p == tmp_path / "home" / "benchmarks" / "x" / "ok.json" and p.read_bytes() == body
        assert bdata.resolve(good, empty) == p  # cached: no second download
        bad = bdata.DataFile("x/bad.json", srv.url + "/ok.json", "0" * 64)
        with pytest.raises(bdata.DataUnavailable, match="sha256"):
            bdata.resolve(bad, empty)
        assert not (tmp_path / "home" / "benchmarks" / "x" / "bad.json").exists()
        with pytest.raises(bdata.DataUnavailable, match="download"):
            bdata.resolve(bdata.DataFile("x/missing.json", srv.url + "/missing.json"), empty)
        g = bdata.resolve(bdata.DataFile("x/graph.json", srv.url + "/graph.pickle", None, "pickle-json"), empty)
        assert json.loads(g.read_text()) == {"apt29": ["cozy bear"]}
        with pytest.raises(bdata.DataUnavailable, match="refusing global"):
            bdata.resolve(bdata.DataFile("x/evil.json", srv.url + "/evil.pickle", None, "pickle-json"), empty)
        monkeypatch.setenv("SECFOUNDRY_OFFLINE", "1")
        with pytest.raises(bdata.DataUnavailable, match="--data-dir"):
            get_task("cybermetric-2000").load(empty)
    finally:
        srv.close()


def test_local_files_are_pinned(bench_dir: Path):
    for name in COUNTS:
        for row in get_task(name).data_description(bench_dir):
            assert row["sha256"] is not None, row
            assert row["matches_pin"], row  # shared data is byte-identical to the pinned upstream


def test_seceval_faith_multi_answers(bench_dir: Path):
    task = get_task("seceval")
    items = task.load(bench_dir)
    base = Protocol(name="faith", instruct=False)
    reqs = task.requests(items[:10], base, 0, items)
    assert reqs[0].prefix.count("\nAnswer: ") == 5
    multi = next(it for it in items[:10] if len(it.gold) > 1 and it.id in {r.item_id for r in reqs})
    r = next(r for r in reqs if r.item_id == multi.id)
    p = task.parse(multi, r, Response(r.item_id, text=" " + ", ".join(multi.gold) + "\n\nQuestion:"), base)
    assert p.answer == multi.gold and task.is_correct(multi, p.answer)
    chat = Protocol(name="faith", instruct=True)
    rc = task.requests([multi], chat, 0, items)[0]
    assert "'Answer: $LETTERS'" in rc.prompt[-1]["content"]
    pc = task.parse(multi, rc, Response(rc.item_id, text="Reasoning...\nAnswer: " + " and ".join(multi.gold)), chat)
    assert pc.answer == multi.gold
    off = task.requests([multi], Protocol(name="official", instruct=False), 0, items)[0]
    assert off.gen.max_new_tokens == 5
