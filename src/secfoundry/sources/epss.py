"""FIRST EPSS scores (Exploit Prediction Scoring System), daily CSV.

Format: a comment line ``#model_version:v2025.03.14,score_date:2025-03-15T00:00:00Z``, then a
``cve,epss,percentile`` header and one row per CVE; served gzipped
(``epss_scores-current.csv.gz`` or ``epss_scores-YYYY-MM-DD.csv.gz``), plain files work too.

Records are attribute updates for vulnerability ids: type ``vulnerability``, source ``epss``,
attributes ``epss``, ``percentile``, ``model_version``, ``score_date``; the KB merges them into
the CVE's view. Scores are numbers, not prose, so this connector renders no corpus documents.
Bad rows (malformed CVE id, score outside [0, 1]) are quarantined by line number; a truncated
gzip keeps the rows read before the break.
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Iterator

from secfoundry.sources.base import Quarantine, Remote, Snapshot, Source, open_binary, register
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core import records as rt
from secfoundry.core.records import Record

BASE = "https://epss.empiricalsecurity.com"
CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")
_META = re.compile(r"(\w+):([^,]*)")


def parse_comment(line: str) -> dict[str, str]:
    """``#model_version:v2025.03.14,score_date:2025-03-15T00:00:00+0000`` -> dict."""
    return {k.strip(): v.strip() for k, v in _META.findall(line.lstrip("#"))}


class EpssSource(Source):
    name = "epss"
    title = "FIRST Exploit Prediction Scoring System (EPSS)"
    license = "EPSS usage terms (free use with attribution to FIRST/EPSS)"
    homepage = "https://www.first.org/epss/"

    def __init__(self, day: date | str | None = None, base_url: str = BASE):
        self.day = day.isoformat() if isinstance(day, date) else day
        self.base_url = base_url.rstrip("/")

    first_only = True

    def _file_name(self) -> str:
        return f"epss_scores-{self.day or 'current'}.csv.gz"

    def mirror_patterns(self) -> list[str]:
        return [self._file_name(), "epss_scores-*.csv.gz", "epss_scores-*.csv", "*.csv*"]

    def remotes(self) -> list[Remote]:
        return [Remote(f"{self.base_url}/{self._file_name()}")]

    def version_of(self, files: list[Path]) -> str:
        """The model version and score date from the file's ``#model_version:...`` first line."""
        version = ""
        try:
            with open_binary(files[0]) as f:
                first = f.readline(4096).decode("utf-8", "replace")
            meta = parse_comment(first) if first.startswith("#") else {}
            version = f"{meta.get('model_version', '')} {meta.get('score_date', '')}".strip()
        except (OSError, EOFError, zlib.error):
            pass  # records() reports the unreadable file
        return version

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        stats: Counter[str] = Counter()
        for file in map(Path, snapshot.files):
            yield from self._file(file, snapshot, q, stats)
        snapshot.extra["stats"] = dict(stats)

    def _file(self, file: Path, snapshot: Snapshot, q: Quarantine, stats: Counter[str]) -> Iterator[Record]:
        line_no = 0
        try:
            with open_binary(file) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                first = text.readline()
                line_no = 1
                meta: dict[str, str] = {}
                if first.startswith("#"):
                    meta = parse_comment(first)
                    header_line = text.readline()
                    line_no = 2
                else:
                    header_line = first
                header = [h.strip().lower() for h in next(csv.reader([header_line]), [])]
                if header[:3] != ["cve", "epss", "percentile"]:
                    raise InputError(f"header is {header_line.strip()!r}, expected 'cve,epss,percentile'",
                                     file=str(file), row=line_no)
                model, score_date = meta.get("model_version", ""), meta.get("score_date", "")
                snapshot.version = f"{model} {score_date}".strip() or snapshot.version
                snapshot.extra.update(model_version=model, score_date=score_date)
                for row in csv.reader(text):
                    line_no += 1
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    try:
                        rec = self._row(row, model, score_date)
                    except InputError as e:
                        q.add(self.name, str(file), line_no, InputError(str(e), file=str(file), row=line_no))
                        stats["bad_rows"] += 1
                        continue
                    rec.version = snapshot.version
                    stats["rows"] += 1
                    yield rec
        except InputError as e:
            q.add(self.name, str(file), line_no, e)
            stats["bad_files"] += 1
        except UnicodeDecodeError as e:
            q.add(self.name, str(file), line_no,
                  InputError(f"not valid UTF-8 ({e.reason})", file=str(file), row=line_no + 1))
            stats["bad_files"] += 1
        except (EOFError, OSError, zlib.error, csv.Error) as e:
            q.add(self.name, str(file), line_no,
                  InputError(f"cannot read after line {line_no} ({type(e).__name__}: {e})", file=str(file)))
            stats["bad_files"] += 1

    def _row(self, row: list[str], model: str, score_date: str) -> Record:
        if len(row) < 3:
            raise InputError(f"expected 3 columns, got {len(row)}")
        cve = row[0].strip().upper()
        if not CVE_ID.match(cve):
            raise InputError(f"malformed CVE id {row[0]!r}", field="cve")
        vals = {}
        for name, cell in (("epss", row[1]), ("percentile", row[2])):
            try:
                v = float(cell)
            except ValueError:
                raise InputError(f"not a number: {cell!r}", field=name) from None
            if not 0.0 <= v <= 1.0:
                raise InputError(f"{v} is outside [0, 1]", field=name)
            vals[name] = v
        return Record(id=cve, type=rt.VULNERABILITY, name=cve, description="", source=self.name,
                      url=f"https://api.first.org/data/v1/epss?cve={cve}", license=self.license,
                      attributes={**vals, "model_version": model, "score_date": score_date})

    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        """EPSS rows are numeric attribute updates; they make no pretraining documents."""
        return iter(())


register(EpssSource)
