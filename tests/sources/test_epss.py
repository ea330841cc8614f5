"""EPSS connector on generated files in the upstream format (EPSS is not mirrored)."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Snapshot, registry
from secfoundry.sources.epss import EpssSource, parse_comment
from secfoundry.core.download import Fetcher

COMMENT = "#model_version:v2025.03.14,score_date:2025-08-25T12:55:00Z"


def make_epss(n: int = 500, seed: int = 0, comment: str = COMMENT) -> tuple[bytes, dict[str, tuple[float, float]]]:
    rng = random.Random(seed)
    rows, truth = [], {}
    for i in range(n):
        cve = f"CVE-{rng.randint(1999, 2025)}-{10000 + i}"
        e, p = round(rng.random(), 5), round(rng.random(), 5)
        truth[cve] = (e, p)
        rows.append(f"{cve},{e},{p}")
    text = "\n".join(([comment] if comment else []) + ["cve,epss,percentile", *rows]) + "\n"
    return text.encode(), truth


def _run(path: Path):
    q = Quarantine()
    snap = Snapshot("epss", [path])
    return {r.id: r for r in EpssSource().records(snap, q)}, q, snap


def test_registered():
    assert registry()["epss"] is EpssSource


@pytest.mark.parametrize("compressed", [True, False])
def test_generated_file(tmp_path, compressed):
    data, truth = make_epss()
    p = tmp_path / ("epss_scores-2025-08-25.csv" + (".gz" if compressed else ""))
    p.write_bytes(gzip.compress(data) if compressed else data)
    recs, q, snap = _run(p)
    assert len(recs) == len(truth) == 500 and len(q) == 0
    cve, (e, pct) = next(iter(truth.items()))
    r = recs[cve]
    assert r.type == "vulnerability" and r.source == "epss" and r.name == cve
    assert r.attributes == {"epss": e, "percentile": pct, "model_version": "v2025.03.14",
                            "score_date": "2025-08-25T12:55:00Z"}
    assert snap.version == "v2025.03.14 2025-08-25T12:55:00Z" and r.version == snap.version
    assert list(EpssSource().documents(snap)) == []


def test_without_comment_line(tmp_path):
    data, truth = make_epss(10, comment="")
    p = tmp_path / "e.csv"
    p.write_bytes(data)
    recs, q, _ = _run(p)
    assert len(recs) == 10 and not q.items


def test_parse_comment():
    assert parse_comment(COMMENT) == {"model_version": "v2025.03.14", "score_date": "2025-08-25T12:55:00Z"}


def test_bad_rows_quarantined_by_line(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("\n".join([COMMENT, "cve,epss,percentile", "CVE-2024-0001,0.5,0.9", "CVE-XX,0.1,0.2",
                            "CVE-2024-0002,1.7,0.3", "CVE-2024-0003,abc,0.3", "CVE-2024-0004", "",
                            "CVE-2024-0005,0.01,0.02"]) + "\n")
    recs, q, _ = _run(p)
    assert set(recs) == {"CVE-2024-0001", "CVE-2024-0005"}
    by_line = {i["entry"]: i["error"] for i in q.items}
    assert set(by_line) == {4, 5, 6, 7}
    assert "malformed CVE id" in by_line[4] and "outside [0, 1]" in by_line[5] and "'epss'" in by_line[6]
    assert "e.csv" in by_line[4] and "row 4" in by_line[4]


def test_truncated_gzip_keeps_rows_before_break(tmp_path):
    data, truth = make_epss(20000)
    p = tmp_path / "t.csv.gz"
    p.write_bytes(gzip.compress(data)[:60000])
    recs, q, _ = _run(p)
    assert 0 < len(recs) < 20000
    assert "t.csv.gz" in q.items[0]["error"] and "cannot read after line" in q.items[0]["error"]


def test_wrong_header_and_encoding(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text(COMMENT + "\nid,score\nCVE-2024-0001,0.5\n")
    recs, q, _ = _run(p)
    assert not recs and "expected 'cve,epss,percentile'" in q.items[0]["error"]
    p2 = tmp_path / "enc.csv"
    p2.write_bytes((COMMENT + "\ncve,epss,percentile\nCVE-2024-0001,0.5,0.5\n").encode() + b"CVE-2024-0002,\xff,0.1\n")
    recs, q, _ = _run(p2)
    assert "not valid UTF-8" in q.items[0]["error"] and "enc.csv" in q.items[0]["error"]


def test_live_download(http_server, tmp_path):
    data, truth = make_epss(50)
    http_server.add_file("epss_scores-current.csv.gz", gzip.compress(data))
    src = EpssSource(base_url=http_server.base)
    with Fetcher(tmp_path, retries=0) as f:
        snap = src.fetch(None, fetcher=f)
    assert len(list(src.records(snap))) == 50
    assert snap.extra["model_version"] == "v2025.03.14"
