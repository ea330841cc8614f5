"""SecBench MCQ subsets: every count of the module's table, FAITH's data watermarks, pinned ids."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from secfoundry.core.errors import InputError
from secfoundry.eval.benchmarks import get_task, secbench
from secfoundry.eval.benchmarks.secbench import (CJK_IDEOGRAPH, FAITH_DROPPED_ROWS, FAITH_REASONING_ROWS,
                                                 faith_eligible)

SHARED_BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "benchmarks"

# size and sha256 of ",".join(ordered item ids) of each FAITH subset
PINNED = {
    "secbench-mcq-eng": (587, "7f808d02f5022d8f2172b18e56e1c04d6c32e4e6e9b6fc305ae6dad14df3cea4"),
    "secbench-mcq-eng-595": (595, "10c1957133b885463866e3550acfbe52cfb50991a2b4a43d6819b615b4096611"),
    "secbench-mcq-eng-reasoning": (43, "ddbf3749c91db0825294ac2278ebcddda88690b3cb2e95da893246cf9ecefe89"),
    "secbench-mcq-eng-dedup": (581, "2cfd94d588f4d1c5d95dfb8547dec1c95215cbe6d85485c4ea9d906addf91367"),
}
# FAITH's tests pin hash_dataframe(dataset._benchmark_data) = sha256 of orjson.dumps(df.to_dict("list"),
# OPT_SORT_KEYS) over the columns question (stripped), choices, answer (label stripped, upper-cased).
FAITH_WATERMARKS = {
    "secbench-mcq-eng-595": "31be71026da26cd4559e76ea043f8922d634427f5f3e26e3ce350f1bf56d7fb9",
    "secbench-mcq-eng-reasoning": "d91b06a8f4713810f0ce0c68d8f8e52944a7d2b03d56474fb107b5ddf01a9de2",
}


@pytest.fixture(scope="module")
def data() -> Path:
    if not (SHARED_BENCH / "secbench" / "MCQs_2730.jsonl").is_file():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{SHARED_BENCH}/secbench/MCQs_2730.jsonl is missing (CI needs ../shared/data)")
        pytest.skip("../shared/data is not present")
    return SHARED_BENCH


def ids_sha(items) -> str:
    return hashlib.sha256(",".join(it.id for it in items).encode()).hexdigest()


def table_rows() -> list[tuple[str, str, int]]:
    """(benchmark or "", derivation, count) for every row of the module docstring's table."""
    out = []
    for line in (secbench.__doc__ or "").splitlines():
        m = re.match(r"^\| (?:``([a-z0-9-]+)``)? ?\| (.+) \| (\d+) \|$", line)
        if m:
            out.append((m.group(1) or "", m.group(2), int(m.group(3))))
    return out


def test_every_count_of_the_table(data: Path):
    rows = table_rows()
    assert len(rows) == 8
    full = get_task("secbench-mcq").load(data)
    english = [it for it in full if it.meta["language"] == "English"]
    computed = {
        "every row": len(full),
        "language English": len(english),
        "language Chinese": len(get_task("secbench-mcq", language="Chinese").load(data)),
        "no CJK ideograph": sum(not CJK_IDEOGRAPH.search(it.question) for it in english),
    }
    assert computed["language English"] == len(get_task("secbench-mcq:language=en").load(data))
    for name, derivation, count in rows:
        if name:
            assert len(get_task(name).load(data)) == count, name
            if name == "secbench-mcq":
                assert computed["every row"] == count
        else:
            key = next(k for k in computed if k in derivation)
            assert computed[key] == count, derivation


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_size_and_ordered_ids(data: Path, name: str):
    items = get_task(name).load(data)
    size, sha = PINNED[name]
    assert len(items) == size
    assert ids_sha(items) == sha
    assert [int(it.id) for it in items] == sorted(int(it.id) for it in items)  # file order


@pytest.mark.parametrize("name", sorted(FAITH_WATERMARKS))
def test_faith_data_watermark(data: Path, name: str):
    """The same rows, texts and labels FAITH's own tests pin (its hash_dataframe)."""
    items = get_task(name).load(data)
    frame = {"question": [it.question for it in items], "choices": [list(it.options.values()) for it in items],
             "answer": [it.gold for it in items]}
    blob = json.dumps(frame, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(blob).hexdigest() == FAITH_WATERMARKS[name]


def test_dropped_rows_are_exactly_the_repeats(data: Path):
    faith = get_task("secbench-mcq-eng-595").load(data)
    seen: dict[tuple, str] = {}
    repeats = []
    for it in faith:
        key = (it.question, tuple(it.options.values()), it.gold)
        if key in seen:
            repeats.append(int(it.id))
        seen.setdefault(key, it.id)
    assert tuple(repeats) == FAITH_DROPPED_ROWS
    by_id = {it.id: it for it in faith}
    # 1106 repeats 1088's question and options with another label: kept
    assert by_id["1106"].question == by_id["1088"].question and by_id["1106"].gold != by_id["1088"].gold
    kept = {it.id for it in get_task("secbench-mcq-eng").load(data)}
    assert "1106" in kept and not kept & {str(r) for r in FAITH_DROPPED_ROWS}
    # the six rows the old deduplicated subset lost (CJK punctuation, case/space duplicates) are back
    dedup = {it.id for it in get_task("secbench-mcq-eng-dedup").load(data)}
    assert kept - dedup == {"528", "1106", "1999", "2076", "2095", "2294"}
    assert "（）。" not in by_id["2294"].question and by_id["2294"].question.endswith("()。")


def test_reasoning_rows_are_english_logical_reasoning(data: Path):
    full = get_task("secbench-mcq").load(data)
    derived = tuple(int(it.id) for it in full if faith_eligible(it) and it.meta["ability"] == "逻辑推理")
    assert derived == FAITH_REASONING_ROWS
    english_reasoning = [it for it in full if it.meta["language"] == "English" and it.meta["ability"] == "逻辑推理"]
    assert len(english_reasoning) == 45  # two of them have multi-letter labels


def _write(path: Path, rows: list[dict]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "MCQs_2730.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                          encoding="utf-8")
    return path.parent


def _row(q: str, label: str = "A", lang: str = "English", answers=("a", "b", "c", "d")) -> dict:
    return {"question": q, "answers": list(answers), "label": label, "language": lang, "ability": "知识记忆",
            "domain": "d"}


def test_filters_on_a_tiny_file(tmp_path: Path):
    rows = [_row("  What is TLS?  "), _row("Fill the blank ()。"), _row("有中文"), _row("Two?", "AB"),
            _row("zh", lang="Chinese"), _row("What is TLS?"), _row(" what is  tls? ", " c")]
    d = _write(tmp_path / "secbench", rows)
    eng = get_task("secbench-mcq-eng-595").load(d)
    assert [it.id for it in eng] == ["0", "1", "5", "6"]
    assert eng[0].question == "What is TLS?" and eng[3].gold == "C"  # stripped like FAITH
    dedup = get_task("secbench-mcq-eng-dedup").load(d)
    assert [it.id for it in dedup] == ["0"]  # CJK punctuation and the case/space repeat are dropped
    with pytest.raises(InputError, match="reasoning rows"):
        get_task("secbench-mcq-eng-reasoning").load(d)


def test_bad_rows_name_the_row(tmp_path: Path):
    d = _write(tmp_path / "secbench", [_row("ok"), _row("bad", "Z")])
    with pytest.raises(InputError) as e:
        get_task("secbench-mcq-eng").load(d)
    assert "row 2" in str(e.value) and "label" in str(e.value)


def test_variants_run_only_by_name(data: Path):
    from secfoundry.eval.plan import resolve_benchmarks

    fam, _ = resolve_benchmarks(["secbench"], data)
    assert fam == ["secbench-mcq", "secbench-mcq-eng", "secbench-mcq-eng-reasoning", "secbench-saq"]
    quick, _ = resolve_benchmarks(["quickstart"], data)
    assert "secbench-mcq-eng-595" not in quick and "secbench-mcq-eng-dedup" not in quick
    assert resolve_benchmarks(["secbench-mcq-eng-595"], data)[0] == ["secbench-mcq-eng-595"]
