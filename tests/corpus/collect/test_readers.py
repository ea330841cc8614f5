"""Collect readers: WARC/WET in Common Crawl layout, JSONL field mapping, Parquet, general
replay, connectors from the mirror; bad entries quarantined, never fatal."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from secfoundry.corpus.collect.general import iter_general_documents, general_files
from secfoundry.corpus.collect.jsonl import iter_jsonl_documents
from secfoundry.corpus.collect.parquet import iter_parquet_documents
from secfoundry.corpus.collect.plan import iter_task_documents, plan_tasks
from secfoundry.corpus.collect.warc import WarcSink, expand_paths, iter_warc_documents
from secfoundry.corpus.engine.recipe import JsonlInput, SourcesInput, WarcInput
from secfoundry.core.errors import Quarantine

from .sites import SEC, make_pdf


def write_wet(path, records):
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        w.write_record(w.create_warcinfo_record(path.name, {"software": "test"}))
        for url, text, lang in records:
            rec = w.create_warc_record(url, "conversion", payload=io.BytesIO(text.encode()),
                                       warc_headers_dict={"Content-Type": "text/plain",
                                                          "WARC-Refers-To": "<urn:uuid:x>",
                                                          "WARC-Identified-Content-Language": lang})
            w.write_record(rec)


def test_wet_common_crawl_layout(tmp_path):
    seg = tmp_path / "crawl-data" / "CC-MAIN-2099-01" / "segments" / "1" / "wet"
    seg.mkdir(parents=True)
    write_wet(seg / "a.warc.wet.gz", [("https://a.org/1", SEC, "eng"), ("https://a.org/2", "  ", "eng")])
    write_wet(seg / "b.warc.wet.gz", [("https://b.org/1", "Bonjour " * 20, "fra")])
    manifest = tmp_path / "wet.paths.gz"
    manifest.write_bytes(gzip.compress(
        b"crawl-data/CC-MAIN-2099-01/segments/1/wet/a.warc.wet.gz\n"
        b"crawl-data/CC-MAIN-2099-01/segments/1/wet/b.warc.wet.gz\n"))
    files = expand_paths([str(manifest)], base=str(tmp_path))
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.warc.wet.gz", "b.warc.wet.gz"]
    docs = [d for f in files for d in iter_warc_documents(f, source="commoncrawl", license="CC-ToU")]
    assert [d.url for d in docs] == ["https://a.org/1", "https://b.org/1"]  # empty text skipped
    assert docs[0].text == SEC and docs[0].metadata["format"] == "text"
    assert docs[1].metadata["cc_languages"] == "fra" and docs[1].license == "CC-ToU"
    assert docs[0].id.startswith("commoncrawl:") and docs[0].id != docs[1].id
    # the same files through planning: one collect task per WET file
    tasks = plan_tasks([WarcInput(kind="wet", paths=[str(manifest)], base=str(tmp_path))])
    assert len(tasks) == 2 and all(t.kind == "warc" for t in tasks)


def test_warc_responses_charsets_pdf_and_bad_records(tmp_path):
    path = tmp_path / "x.warc.gz"
    with WarcSink(path) as sink:
        sink.write_response("https://h.org/latin", 200, "OK", [("Content-Type", "text/html; charset=iso-8859-1")],
                            "<html><body><p>Caf\u00e9 exploit</p></body></html>".encode("latin-1"))
        sink.write_response("https://h.org/meta", 200, "OK", [("Content-Type", "text/html")],
                            "<html><head><meta charset='windows-1252'></head><body>\u2019quote</body></html>".encode("cp1252"))
        sink.write_response("https://h.org/404", 404, "Not Found", [("Content-Type", "text/html")], b"<p>no</p>")
        sink.write_response("https://h.org/img", 200, "OK", [("Content-Type", "image/png")], b"\x89PNG")
        sink.write_response("https://h.org/p.pdf", 200, "OK", [("Content-Type", "application/pdf")],
                            make_pdf("Malware report CVE-2021-44228"))
        sink.write_response("https://h.org/broken.pdf", 200, "OK", [("Content-Type", "application/pdf")],
                            b"%PDF-1.4 garbage")
    q = Quarantine()
    docs = {d.url: d for d in iter_warc_documents(str(path), source="web", quarantine=q)}
    assert set(docs) == {"https://h.org/latin", "https://h.org/meta", "https://h.org/p.pdf"}
    assert "Caf\u00e9" in docs["https://h.org/latin"].text
    assert "\u2019quote" in docs["https://h.org/meta"].text
    assert docs["https://h.org/latin"].metadata["mime"] == "text/html"
    assert "CVE-2021-44228" in docs["https://h.org/p.pdf"].text
    # the broken PDF (record 6 after the warcinfo) is quarantined with its file and record index
    assert [(i["entry"], i["file"]) for i in q.items] == [(6, str(path))]


def test_jsonl_field_mapping_and_quarantine(tmp_path):
    p = tmp_path / "in.jsonl.gz"
    rows = [json.dumps({"body": {"text": "first document"}, "key": "k1", "where": "https://x/1", "lang": "en"}),
            "not json at all",
            json.dumps({"body": {"text": 42}, "key": "k2"}),
            json.dumps({"body": {"text": "third"}, "src": "feed-b"}),
            "", json.dumps([1, 2])]
    p.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    q = Quarantine()
    docs = list(iter_jsonl_documents(str(p), text_field="body.text", id_field="key", url_field="where",
                                     source_field="src", source="feed", license="MIT", metadata_fields=["lang"],
                                     quarantine=q))
    assert [d.id for d in docs][0] == "feed:k1"
    assert docs[0].url == "https://x/1" and docs[0].metadata["lang"] == "en" and docs[0].license == "MIT"
    assert docs[1].source == "feed-b" and docs[1].id.startswith("feed-b:")
    assert sorted(i["entry"] for i in q.items) == [2, 3, 6]
    assert all("in.jsonl.gz" in i["file"] for i in q.items)


def test_parquet_foreign_table_and_own_output(tmp_path):
    t = pa.table({"content": ["alpha text", None, "gamma text"], "link": ["u1", "u2", "u3"]})
    pq.write_table(t, tmp_path / "foreign.parquet")
    docs = list(iter_parquet_documents(str(tmp_path / "foreign.parquet"), text_field="content", id_field=None,
                                       url_field="link", source="ext"))
    assert [d.url for d in docs] == ["u1", "u3"] and docs[0].source == "ext"
    from secfoundry.corpus.engine.storage import docs_table

    pq.write_table(docs_table(docs), tmp_path / "own.parquet")
    again = list(iter_parquet_documents(str(tmp_path / "own.parquet")))
    assert [(d.id, d.text, d.source) for d in again] == [(d.id, d.text, d.source) for d in docs]
    with pytest.raises(ValueError, match="no column 'body'"):
        list(iter_parquet_documents(str(tmp_path / "foreign.parquet"), text_field="body"))


def test_general_replay(datasets_dir):
    files = general_files(str(datasets_dir / "general-text"))
    names = [f.rsplit("/", 1)[1] for f in files]
    assert "tinyshakespeare.txt" in names and not any(n.startswith(("README", "COPYRIGHT")) for n in names)
    shakes = list(iter_general_documents(str(datasets_dir / "general-text" / "tinyshakespeare.txt"), max_docs=3))
    assert len(shakes) == 3 and all(d.source == "general:shakespeare" and d.license == "public-domain" for d in shakes)
    assert all(2000 < len(d.text) < 8000 for d in shakes)
    wiki = list(iter_general_documents(str(datasets_dir / "general-text" / "wikitext2-valid-test.articles.jsonl"),
                                       max_docs=5))
    assert len(wiki) == 5 and wiki[0].source == "general:wikitext" and wiki[0].title


def test_sources_from_mirror(mirror, tmp_path):
    tasks = plan_tasks([SourcesInput(names=["kev", "cve"], max_docs=5)], mirror=str(mirror))
    assert [t.key for t in tasks] == ["src-kev", "src-cve"]
    q = Quarantine()
    docs = list(iter_task_documents(tasks[0], q, tmp_path))
    assert len(docs) == 5
    d = docs[0]
    assert d.id.startswith("kev:") and d.source == "kev" and d.license and d.version
    assert d.metadata["collect"] == "sources" and d.metadata["origin"].startswith("mirror")
    with pytest.raises(KeyError, match="unknown source"):
        plan_tasks([SourcesInput(names=["no-such-source"])])


def test_jsonl_plan_keys_unique(tmp_path):
    for n in ("a", "b"):
        (tmp_path / f"{n}.jsonl").write_text('{"text": "x"}\n')
    tasks = plan_tasks([JsonlInput(paths=[str(tmp_path / "*.jsonl")]), JsonlInput(paths=[str(tmp_path / "a.jsonl")])])
    assert len({t.key for t in tasks}) == 3
