"""EPSS scores (FIRST / Empirical Security): a daily CSV of exploitation probabilities per CVE.

Format (live file ``epss_scores-current.csv.gz``): a comment line
``#model_version:v2025.03.14,score_date:2025-08-25T12:55:00Z`` then ``cve,epss,percentile``.
``load_epss`` reads that format from a file (gzip or plain); ``live_epss`` downloads the
current file into ``SECFOUNDRY_HOME/cache/epss`` (one download per day) and reads it. Bad rows are
reported by row number and skipped.
"""

from __future__ import annotations

import gzip
import io
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from secfoundry.core.errors import InputError

EPSS_URL = "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz"
MAX_AGE_S = 24 * 3600


@dataclass
class EPSSTable:
    scores: dict[str, tuple[float, float]]  # CVE -> (epss, percentile)
    model_version: str = ""
    score_date: str = ""
    source: str = ""
    errors: list[str] = field(default_factory=list)

    def get(self, cve: str) -> tuple[float, float] | None:
        return self.scores.get(cve.upper())


def parse_epss(text: str, source: str) -> EPSSTable:
    lines = text.splitlines()
    meta: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        for part in lines[i][1:].split(","):
            if ":" in part:
                k, v = part.split(":", 1)
                meta[k.strip()] = v.strip()
        i += 1
    if i >= len(lines):
        raise InputError("no header row (expected cve,epss,percentile)", file=source)
    header = [h.strip().lower() for h in lines[i].split(",")]
    if header[:3] != ["cve", "epss", "percentile"]:
        raise InputError(f"header is {lines[i][:80]!r}, expected cve,epss,percentile", file=source, row=i + 1)
    table = EPSSTable({}, meta.get("model_version", ""), meta.get("score_date", ""), source)
    for n, line in enumerate(lines[i + 1:], start=i + 2):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            cve, e, p = parts[0].strip().upper(), float(parts[1]), float(parts[2])
            if not re.fullmatch(r"CVE-\d{4}-\d{4,}", cve) or not (0 <= e <= 1 and 0 <= p <= 1):
                raise ValueError
        except (ValueError, IndexError):
            if len(table.errors) < 100:
                table.errors.append(f"file {source}, row {n}: not 'CVE-id,epss,percentile': {line[:80]!r}")
            continue
        table.scores[cve] = (e, p)
    return table


def load_epss(path: str | Path) -> EPSSTable:
    p = Path(path)
    if not p.is_file():
        raise InputError("no such EPSS file", file=str(p))
    data = p.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise InputError(f"broken gzip: {e}", file=str(p)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 at byte {e.start}", file=str(p)) from None
    return parse_epss(text, str(p))


def live_epss(*, url: str = EPSS_URL, timeout: float = 30.0, cache: Path | None = None) -> EPSSTable:
    """The current EPSS file, downloaded at most once a day (httpx, into the cache)."""
    from secfoundry.core.paths import cache_dir

    target = (cache or cache_dir("epss")) / "epss_scores-current.csv.gz"
    if not target.exists() or time.time() - target.stat().st_mtime > MAX_AGE_S:
        import httpx

        try:
            with httpx.Client(timeout=timeout, follow_redirects=True) as client:
                r = client.get(url)
                r.raise_for_status()
        except httpx.HTTPError as e:
            if target.exists():
                table = load_epss(target)
                table.errors.append(f"EPSS download failed ({e}); using the cached copy from {table.score_date}")
                return table
            raise InputError(f"EPSS download failed: {e}; pass --epss FILE or --epss none", file=url) from None
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(r.content)
        tmp.replace(target)
    return load_epss(target)


def epss_csv(rows: dict[str, tuple[float, float]], model_version: str = "v2025.03.14",
             score_date: str = "2025-08-25T00:00:00Z") -> str:
    """A file in EPSS's format (tests and fixtures)."""
    buf = io.StringIO()
    buf.write(f"#model_version:{model_version},score_date:{score_date}\ncve,epss,percentile\n")
    for cve, (e, p) in sorted(rows.items()):
        buf.write(f"{cve},{e:.5f},{p:.5f}\n")
    return buf.getvalue()
