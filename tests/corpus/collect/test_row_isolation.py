"""Issue #14 item 8: every reader isolates a bad row or record (file + position in the
quarantine), keeps reading, and the collect summary counts it."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from secfoundry.corpus.collect.jsonl import iter_jsonl_documents
from secfoundry.corpus.collect.parquet import iter_parquet_documents
from secfoundry.corpus.collect.warc import iter_warc_documents
from secfoundry.core.errors import InputError, Quarantine

DEEP = '{"text": ' + "[" * 200_000 + "]" * 200_000 + "}"


def rows(n: int = 10) -> list[str]:
    return [json.dumps({"id": i, "text": f"row {i} about CVE-2024-{1000 + i}"}) for i in range(n)]


def test_jsonl_recursion_error_row_is_quarantined_and_the_rest_read(tmp_path):
    lines = rows()
    lines.insert(3, DEEP)  # line 4 raises RecursionError in json.loads
    p = tmp_path / "x.jsonl"
    p.write_text("\n".join(lines) + "\n")
    q = Quarantine()
    docs = list(iter_jsonl_documents(str(p), id_field="id", source="feed", quarantine=q))
    assert [d.id for d in docs] == [f"feed:{i}" for i in range(10)]  # all 10 good rows
    assert [(i["entry"], i["error"].split(":")[0]) for i in q.items] == [(4, "RecursionError")]
    assert q.items[0]["file"] == str(p)


def test_jsonl_truncated_gzip_keeps_rows_before_the_damage(tmp_path):
    p = tmp_path / "x.jsonl.gz"
    data = gzip.compress(("\n".join(rows(200)) + "\n").encode())
    p.write_bytes(data[: len(data) * 2 // 3])
    q = Quarantine()
    docs = list(iter_jsonl_documents(str(p), source="feed", quarantine=q))
    assert 0 < len(docs) < 200
    assert len(q) == 1 and "unreadable from here on" in q.items[0]["error"]
    assert q.items[0]["entry"].startswith("after line ")


def test_parquet_bad_rows_and_corrupt_row_group(tmp_path):
    good = [{"id": f"d{i}", "text": f"text {i}", "metadata": "{}"} for i in range(6)]
    good[2]["metadata"] = '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}"  # RecursionError
    p = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(good), p, row_group_size=3)
    q = Quarantine()
    docs = list(iter_parquet_documents(str(p), quarantine=q))
    assert [d.id for d in docs] == ["d0", "d1", "d3", "d4", "d5"]
    assert [(i["entry"], i["error"].split(":")[0]) for i in q.items] == [(3, "RecursionError")]
    # a damaged second row group (its page header overwritten): the first one is still read,
    # the damaged one is quarantined by row range
    long = [{"id": f"d{i}", "text": f"text {i} " * 50, "metadata": "{}"} for i in range(6)]
    pq.write_table(pa.Table.from_pylist(long), p, row_group_size=3, compression="snappy")
    raw = bytearray(p.read_bytes())
    col = pq.ParquetFile(p).metadata.row_group(1).column(1)
    start = col.dictionary_page_offset or col.data_page_offset
    raw[start + 10: start + 60] = b"\xff" * 50
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(bytes(raw))
    q2 = Quarantine()
    assert [d.id for d in iter_parquet_documents(str(bad), quarantine=q2)] == ["d0", "d1", "d2"]
    assert [i["entry"] for i in q2.items] == ["rows 4-6 (row group 1)"]


def test_warc_bad_record_is_quarantined_and_last_modified_kept(tmp_path):
    p = tmp_path / "x.warc.gz"
    with open(p, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for i, (ctype, body) in enumerate([("text/html", b"<html><body><p>CVE page one</p></body></html>"),
                                           ("application/pdf", b"%PDF-1.4 broken"),
                                           ("text/plain", b"plain page three about patches")]):
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Last-Modified", "Tue, 15 Nov 1994 12:45:26 GMT")],
                                    protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(f"https://e.org/{i}", "response", payload=io.BytesIO(body),
                                                http_headers=http))
    q = Quarantine()
    docs = list(iter_warc_documents(str(p), source="web", quarantine=q))
    assert [d.url for d in docs] == ["https://e.org/0", "https://e.org/2"]
    assert docs[0].metadata["last_modified"].startswith("Tue, 15 Nov 1994")
    assert len(q) == 1 and q.items[0]["entry"] == 1


def test_source_json_and_yaml_loaders_turn_deep_nesting_into_input_errors(tmp_path):
    from secfoundry.sources._archives import load_yaml
    from secfoundry.sources.base import load_json

    with pytest.raises(InputError, match="nested too deeply"):
        load_json(tmp_path / "x.json", data=DEEP.encode(), entry="m.json")
    with pytest.raises(InputError):
        load_yaml("a: " + "[" * 200_000 + "]" * 200_000, "x.tar.gz", "rule.yml")


def test_collect_marker_counts_the_quarantined_row(tmp_path):
    from secfoundry.corpus.engine.workers import CollectWorker

    lines = rows()
    lines.insert(5, DEEP)
    p = tmp_path / "x.jsonl"
    p.write_text("\n".join(lines) + "\n")
    w = CollectWorker(str(tmp_path / "phase"), partition_rows=100, compression="zstd", keep_excluded=True)
    task = {"key": "in0-jsonl-00000-x", "kind": "jsonl",
            "params": {"path": str(p), "text_field": "text", "id_field": "id", "source": "feed"}}
    w.collect(task)
    m = json.loads((tmp_path / "phase" / "markers" / "in0-jsonl-00000-x.json").read_text())
    assert m["docs_out"] == 10 and m["quarantined"] == 1 and not m["error"]
    qline = json.loads((tmp_path / "phase" / "quarantine" / "in0-jsonl-00000-x.jsonl").read_text().splitlines()[0])
    assert qline["entry"] == 6 and "RecursionError" in qline["error"]
