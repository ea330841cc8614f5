"""The decontaminate step on a tiny benchmark copy (upstream TSV layout): what is cut, what is
dropped, what is kept, the evidence, the date cutoff per source, and the engine's cuts output."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from secfoundry.corpus.prepare.decontaminate import Decontaminate, DecontaminateConfig
from secfoundry.core.documents import Document

from .helpers import fit_and_run, write_docs
from .test_contamination import MCQ_OPTS, MCQ_Q, vuldb

PROMPT = "Analyze the following CVE description and map it to the appropriate CWE. CVE Description: "


def bench_copy(tmp_path):
    d = tmp_path / "bench" / "ctibench"
    d.mkdir(parents=True)
    rows = ["URL\tDescription\tPrompt\tGT"]
    for i in range(6):
        rows.append(f"https://nvd.nist.gov/vuln/detail/CVE-2024-{1000 + i}\t{vuldb(i)}\t{PROMPT}{vuldb(i)}\tCWE-121")
    (d / "cti-rcm.tsv").write_text("\n".join(rows) + "\n")
    mcq = ["URL\tQuestion\tOption A\tOption B\tOption C\tOption D\tPrompt\tGT",
           "https://attack.mitre.org/techniques/T1546/003/\t" + MCQ_Q + "\t" + "\t".join(MCQ_OPTS) + "\tQ: ...\tB"]
    (d / "cti-mcq.tsv").write_text("\n".join(mcq) + "\n")
    return tmp_path / "bench"


def corpus() -> list[Document]:
    own = vuldb(40, product="AC500", ver="2.0.1.9(1307)", fn="fromAddressNat", file="/goform/addressNat", arg="page")
    return [
        Document(id="cve:CVE-2024-3905", source="cve", text=f"# CVE-2024-3905\n\n{own}\n\n- **Published**: 2024-04-17\n",
                 metadata={"record_id": "CVE-2024-3905", "published": "2024-04-17"}),
        Document(id="cve:CVE-2024-1002", source="cve", text=f"# CVE-2024-1002\n\n{vuldb(2)}\n",
                 metadata={"record_id": "CVE-2024-1002"}),
        Document(id="blog", source="web", text=(
            "Weekly roundup of router bugs and patches for small offices.\n\n"
            "Also patched this week: CVE-2024-1003 in another router, see the vendor advisory.\n\n"
            "Quiz time for our readers, from a CTI course:\n\n" + MCQ_Q + "\n"
            + "\n".join(f"{l}. {o}" for l, o in zip("ABCD", MCQ_OPTS))
            + "\n\nThanks for reading, and remember to update your firmware and rotate credentials regularly.\n")),
        Document(id="kev:CVE-2023-9", source="kev", text="KEV entry about an old bug " * 5,
                 metadata={"date_added": "2024-07-01"}),
        Document(id="attack:T1", source="attack", text="An ATT&CK technique text " * 5,
                 metadata={"created": "2017-05-31T21:30:19.735Z", "modified": "2025-04-15T19:58:00.000Z"}),
        Document(id="crawl:1", source="crawl", text="A crawled page about patch management " * 5,
                 metadata={"collect": "warc", "warc_date": "2025-02-01T00:00:00Z", "last_modified": "2019-02-03"}),
    ]


def test_step_cuts_items_keeps_ordinary_cves_and_drops_by_cve_and_date(tmp_path):
    cfg = DecontaminateConfig(benchmarks=["ctibench-rcm", "ctibench-mcq"], data_dir=str(bench_copy(tmp_path)),
                              date_cutoff="2024-06-01")
    kept, dropped = fit_and_run(Decontaminate(cfg), corpus(), tmp_path)
    by_id = {d.id: d for d in kept}
    reasons = {d.doc.id: d.reason for d in dropped}
    assert reasons == {"cve:CVE-2024-1002": "decontam:cve:ctibench-rcm", "kev:CVE-2023-9": "decontam:date"}
    # the ordinary CVE in the same template keeps its full description
    assert "fromAddressNat" in by_id["cve:CVE-2024-3905"].text
    assert "decontaminated" not in by_id["cve:CVE-2024-3905"].metadata
    # the blog loses the quiz (question + options) and the paragraph naming a benchmark CVE only
    blog = by_id["blog"]
    assert MCQ_Q[:40] not in blog.text and "WMI Event Subscription" not in blog.text
    assert "CVE-2024-1003" not in blog.text
    assert blog.text.startswith("Weekly roundup") and "Thanks for reading" in blog.text
    ev = blog.metadata["decontaminated"]
    assert {e["item"] for e in ev} == {"ctibench-mcq:0", "ctibench-rcm:3"}
    cuts = blog.metadata["_cuts"]
    assert {c["reason"] for c in cuts} == {"decontam:ngram:ctibench-mcq", "decontam:cve:ctibench-rcm"}
    assert all(blog_text_has(c) for c in cuts)
    # dated by created (published basis): ATT&CK from 2017 stays; the page by Last-Modified stays
    assert "attack:T1" in by_id and "crawl:1" in by_id


def blog_text_has(cut: dict) -> bool:
    return cut["end"] > cut["start"] and cut["text"].strip() and cut["why"]


def test_modified_basis_and_document_mode(tmp_path):
    cfg = DecontaminateConfig(benchmarks=["ctibench-rcm", "ctibench-mcq"], data_dir=str(bench_copy(tmp_path)),
                              date_cutoff="2024-06-01", date_basis="modified", mode="document")
    kept, dropped = fit_and_run(Decontaminate(cfg), corpus(), tmp_path)
    reasons = {d.doc.id: d.reason for d in dropped}
    assert reasons["attack:T1"] == "decontam:date" and reasons["blog"].startswith("decontam:")
    assert "crawl:1" not in reasons and "cve:CVE-2024-3905" not in reasons


def test_engine_writes_cuts_and_chars_per_step(tmp_path):
    """PhaseWorker (no Ray): cut spans go to cuts/<key>.parquet with evidence, the marker counts
    characters in/out per step and removed per source."""
    from secfoundry.corpus.engine.storage import PhaseStore
    from secfoundry.corpus.engine.workers import PhaseWorker
    from secfoundry.corpus.step import GlobalContext

    opts = {"benchmarks": ["ctibench-rcm", "ctibench-mcq"], "data_dir": str(bench_copy(tmp_path))}
    inp = write_docs(tmp_path / "in" / "p0.parquet", corpus())
    phase = tmp_path / "run" / "02-prepare-1-decontaminate"
    store = PhaseStore(phase)
    store.state_dir.mkdir(parents=True)
    Decontaminate(DecontaminateConfig(**opts)).fit(GlobalContext([inp], store.state_dir, phase))
    w = PhaseWorker(str(phase), [{"step": "decontaminate", "options": opts}], batch_size=64, compression="zstd",
                    keep_excluded=True)
    w.process("p0", inp)
    m = store.marker("p0")
    st = m["steps"]["decontaminate"]
    assert st["chars_in"] > st["chars_out"]
    assert set(st["chars_removed_by_source"]) == {"web", "cve"}
    assert m["cuts"] == {"decontam:ngram:ctibench-mcq": 1, "decontam:cve:ctibench-rcm": 1}
    rows = pq.read_table(phase / "cuts" / "p0.parquet").to_pylist()
    assert {r["id"] for r in rows} == {"blog#cut0", "blog#cut1"}
    meta = [json.loads(r["metadata"]) for r in rows]
    assert all(x["cut_of"] == "blog" and x["item"] and x["why"] for x in meta)
    kept = pq.read_table(phase / "data" / "p0.parquet").to_pylist()
    assert all("_cuts" not in json.loads(r["metadata"]) for r in kept)

    # the corpus report shows characters removed per step and source, and the cut examples
    from secfoundry.corpus.report import write_report

    store.save_plan({"keys": ["p0"], "steps": [{"step": "decontaminate", "options": opts}]})
    store.mark_complete({"seconds": 1.0})
    md = write_report(tmp_path / "run").with_suffix(".md").read_text()
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in md.splitlines()
            if line.startswith("| 02-prepare-1-decontaminate | decontaminate |")]
    cells = next(r for r in rows if len(r) == 10)  # the Steps table
    assert cells[6] == "2" and int(cells[7].replace(",", "")) == st["chars_in"] - st["chars_out"]
    assert "web" in cells[9] and "cve" in cells[9]
    assert "cut · decontam:ngram:ctibench-mcq" in md and "ctibench-mcq:0" in md
