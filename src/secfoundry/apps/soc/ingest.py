"""Ingest: inputs -> format detection -> parsers -> normalized rows -> the DuckDB store.

- Format is detected per unit (Zeek TSV header, ``.evtx`` magic, JSON array) and, for JSON lines,
  per record (a file may mix Suricata, Zeek, Windows, Wazuh, ECS and other JSON).
- Every bad row becomes an error naming file and line; the other rows are kept. Non-UTF-8 bytes
  are replaced (and reported); truncated compressed files keep what was read.
- Clock skew: when a Windows export's own timestamp disagrees with Sysmon's ``UtcTime`` for a host
  (e.g. local time labelled ``Z``), the median offset is measured per file and host, events of that
  host lacking ``UtcTime`` are shifted by it, and the correction is reported. Missing timestamps
  are kept as NULL and counted.
- Re-ingesting the same records adds nothing (stable event hashes).
"""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta
from pathlib import PurePath
from typing import Any, Callable, Iterator

import orjson

from secfoundry.apps.soc.inputs import Unit, iter_lines, iter_units
from secfoundry.apps.soc.normalize import event_hash, fmt_offset
from secfoundry.apps.soc.parsers import classify, network, parse_record, windows
from secfoundry.apps.soc.schemas import FileReport, IngestReport, RowError
from secfoundry.apps.soc.store import Store

BATCH = 20000
SNIFF_LINES = 20
MAX_REPORTED_ERRORS = 200
SKEW_MIN = timedelta(seconds=60)
_ZEEK_LOGS = {"conn", "dns", "http", "ssl", "ssh", "smtp", "files", "notice", "weird", "x509", "ftp", "dhcp",
              "rdp", "smb_files", "smb_mapping", "dce_rpc", "kerberos", "ntlm", "software", "tunnel", "pe", "sip",
              "snmp", "known_hosts", "known_services", "intel", "radius", "mysql", "irc", "socks", "dpd", "signatures"}


def zeek_path_hint(name: str) -> str:
    base = PurePath(name.split("!")[-1]).name
    base = base.rsplit("__", 1)[-1]
    first = re.split(r"[.\-_]", base)[0]
    return first if first in _ZEEK_LOGS else ""


class SkewCorrector:
    """Median offset (sensor UTC - exporter clock) per host, learnt from rows having both."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.offsets: dict[str, timedelta] = {}
        self.corrected: dict[str, int] = {}

    def learn(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            ref = r.get("_skew_ref")
            if ref is not None and r.get("ts") is not None:
                self.samples.setdefault(r.get("host_name", ""), []).append((r["ts"] - ref).total_seconds())
        for host, xs in self.samples.items():
            if host in self.offsets or len(xs) < 3:
                continue
            med = statistics.median(xs)
            close = sum(1 for x in xs if abs(x - med) <= SKEW_MIN.total_seconds())
            self.offsets[host] = timedelta(seconds=round(med)) if (abs(med) >= SKEW_MIN.total_seconds()
                                                                    and close >= 0.8 * len(xs)) else timedelta(0)

    def apply(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            if r.pop("_export_only", False) and r.get("ts") is not None:
                off = self.offsets.get(r.get("host_name", ""))
                if off:
                    r["ts"] = r["ts"] + off
                    r["ts_note"] = f"skew-corrected {fmt_offset(off)}"
                    self.corrected[r.get("host_name", "")] = self.corrected.get(r.get("host_name", ""), 0) + 1
            r.pop("_skew_ref", None)

    def notes(self) -> list[str]:
        out = []
        for host, off in sorted(self.offsets.items()):
            if off:
                out.append(f"host {host or '?'}: exporter timestamps differ from Sysmon UtcTime by {fmt_offset(off)} "
                           f"(median of {len(self.samples[host])} events); {self.corrected.get(host, 0)} events "
                           f"without UtcTime shifted to UTC")
        return out


class _FileState:
    def __init__(self, name: str):
        self.rep = FileReport(file=name, format="")
        self.formats: dict[str, int] = {}
        self.skew = SkewCorrector()
        self.learnt = False


def _finish_row(row: dict[str, Any], fmt: str, raw: str, name: str, line: int) -> dict[str, Any]:
    row["event_id"] = event_hash(fmt, raw)
    row["raw"] = raw
    row["file"] = name
    row["line"] = line
    row["fields"] = orjson.dumps(row.get("fields") or {}, default=str,
                                 option=orjson.OPT_NON_STR_KEYS).decode()
    return row


def _json_rows(unit: Unit, errors: list[RowError]) -> Iterator[tuple[str, dict[str, Any]]]:
    hint = zeek_path_hint(unit.name)
    lines = iter_lines(unit.stream)  # type: ignore[arg-type]
    tsv: dict[str, Any] | None = None
    header: list[str] = []
    seen = good = 0
    err0 = len(errors)
    while True:
        if seen == SNIFF_LINES and good == 0 and tsv is None:
            first = errors[err0].snippet if len(errors) > err0 else ""
            del errors[err0:]
            errors.append(RowError(file=unit.name, line=1, error=f"unrecognized format: none of the first {SNIFF_LINES} "
                                   "lines is JSON or Zeek TSV; file skipped", snippet=first))
            return
        try:
            n, b = next(lines)
        except StopIteration:
            return
        except (EOFError, OSError, ValueError) as e:
            errors.append(RowError(file=unit.name, line=-1, error=f"input ends early (truncated or damaged): {e}"))
            return
        if not b.strip():
            continue
        seen += 1
        try:
            text = b.decode("utf-8")
        except UnicodeDecodeError as e:
            text = b.decode("utf-8", errors="replace")
            errors.append(RowError(file=unit.name, line=n, error=f"not valid UTF-8 at byte {e.start}: bytes replaced "
                                                                 "(row kept)", snippet=text[:120]))
        if text.startswith("#"):
            header.append(text)
            if text.startswith("#fields") or text.startswith("#types"):
                tsv = network.zeek_tsv_header(header)
            continue
        if tsv is not None:
            try:
                obj = network.zeek_tsv_record(text, tsv)
                good += 1
                yield "zeek-tsv", _finish_row(network.zeek(obj, fmt="zeek-tsv", path_hint=hint), "zeek-tsv", text,
                                              unit.name, n)
            except Exception as e:  # noqa: BLE001 - per-row error, the rest of the file goes on
                errors.append(RowError(file=unit.name, line=n, error=f"zeek TSV: {e}", snippet=text[:120]))
            continue
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            if n == 1 and text.lstrip().startswith("["):
                yield from _json_array(unit, text, lines, errors)
                return
            errors.append(RowError(file=unit.name, line=n, error=f"not JSON: {e}", snippet=text[:120]))
            continue
        if not isinstance(obj, dict):
            errors.append(RowError(file=unit.name, line=n, error=f"a JSON {type(obj).__name__}, not an object",
                                   snippet=text[:120]))
            continue
        fmt = classify(obj)
        try:
            row = parse_record(obj, fmt, hint)
        except Exception as e:  # noqa: BLE001
            errors.append(RowError(file=unit.name, line=n, error=f"{fmt}: {type(e).__name__}: {e}", snippet=text[:120]))
            continue
        good += 1
        yield fmt, _finish_row(row, fmt, text, unit.name, n)


def _json_array(unit: Unit, first: str, lines: Iterator[tuple[int, bytes]], errors: list[RowError]
                ) -> Iterator[tuple[str, dict[str, Any]]]:
    text = first + "\n" + "\n".join(b.decode("utf-8", errors="replace") for _, b in lines)
    try:
        arr = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        errors.append(RowError(file=unit.name, line=1, error=f"not a JSON array: {e}"))
        return
    for i, obj in enumerate(arr if isinstance(arr, list) else [], 1):
        if not isinstance(obj, dict):
            errors.append(RowError(file=unit.name, line=i, error="array element is not an object"))
            continue
        fmt = classify(obj)
        raw = orjson.dumps(obj).decode()
        try:
            yield fmt, _finish_row(parse_record(obj, fmt, zeek_path_hint(unit.name)), fmt, raw, unit.name, i)
        except Exception as e:  # noqa: BLE001
            errors.append(RowError(file=unit.name, line=i, error=f"{fmt}: {e}", snippet=raw[:120]))


def _evtx_rows(unit: Unit, errors: list[RowError]) -> Iterator[tuple[str, dict[str, Any]]]:
    from secfoundry.apps.soc.parsers.evtx import iter_evtx, record_to_dict

    got = 0
    try:
        for n, xml, err in iter_evtx(unit.path):
            if xml is None:
                errors.append(RowError(file=unit.name, line=n, error=f"evtx record unreadable: {err}" if n
                                       else str(err)))
                continue
            got += 1
            try:
                row = windows.parse(record_to_dict(xml), fmt="evtx")
            except Exception as e:  # noqa: BLE001
                errors.append(RowError(file=unit.name, line=n, error=f"evtx: {e}", snippet=xml[:120]))
                continue
            yield "evtx", _finish_row(row, "evtx", xml, unit.name, n)
    except Exception as e:  # noqa: BLE001 - damaged header/chunk: keep what was read
        errors.append(RowError(file=unit.name, line=-1, error=f"evtx file unreadable from here on: {e}"))
        return
    if not got:
        errors.append(RowError(file=unit.name, line=0, error="evtx: no record could be read"))


def _python_rows(name: str, rows: list[tuple[int, str]], errors: list[RowError]
                 ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Lines the bulk path left to the per-record parsers (not JSON, not an object, another format),
    reported with the same messages as :func:`_json_rows`."""
    hint = zeek_path_hint(name)
    for n, text in rows:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            errors.append(RowError(file=name, line=n, error=f"not JSON: {e}", snippet=text[:120]))
            continue
        if not isinstance(obj, dict):
            errors.append(RowError(file=name, line=n, error=f"a JSON {type(obj).__name__}, not an object",
                                   snippet=text[:120]))
            continue
        fmt = classify(obj)
        try:
            yield fmt, _finish_row(parse_record(obj, fmt, hint), fmt, text, name, n)
        except Exception as e:  # noqa: BLE001
            errors.append(RowError(file=name, line=n, error=f"{fmt}: {type(e).__name__}: {e}", snippet=text[:120]))


def ingest(inputs: list[str], store: Store, *, progress: Callable[[int], None] | None = None,
           no_fastpath: bool = False) -> IngestReport:
    """``no_fastpath``: parse everything in Python (the reference path; the tests compare both)."""
    t0 = time.perf_counter()
    report = IngestReport()
    for unit in iter_units(inputs):
        errors: list[RowError] = []
        st = _FileState(unit.name)
        if unit.kind == "error":
            errors.append(RowError(file=unit.name, line=0, error=unit.error))
            rows_iter: Iterator[tuple[str, dict[str, Any]]] = iter(())
        elif unit.kind == "evtx":
            rows_iter = _evtx_rows(unit, errors)
        else:
            rows_iter = _json_rows(unit, errors)
        fast = None
        if unit.kind == "lines" and "!" not in unit.name and unit.name != "<stdin>" and not no_fastpath:
            from secfoundry.apps.soc import fastpath

            fast_fmt = fastpath.eligible(unit.name)
            if fast_fmt:
                fast = fastpath.ingest_file(store, unit.name, fast_fmt, unit.name, zeek_path_hint(unit.name))
                st.formats[fast_fmt] = fast["read"]
                errors += fast["errors"]
                st.rep.read += fast["read"]
                st.rep.inserted += fast["inserted"]
                st.rep.duplicates += fast["duplicates"]
                st.rep.missing_timestamps += fast["missing"]
                rows_iter = _python_rows(unit.name, fast["python_rows"], errors)
        buf: list[dict[str, Any]] = []
        for fmt, row in rows_iter:
            st.formats[fmt] = st.formats.get(fmt, 0) + 1
            buf.append(row)
            if len(buf) >= BATCH:
                _flush(buf, st, store, progress)
                buf = []
        _flush(buf, st, store, progress)
        rep = st.rep
        rep.format = ",".join(f for f, _ in sorted(st.formats.items(), key=lambda x: -x[1])) or "-"
        rep.errors = sum(1 for e in errors if "row kept" not in e.error)
        rep.skew_notes = st.skew.notes() + (fast["notes"] if fast else [])
        store.add_errors((e.file, e.line, e.error, e.snippet) for e in errors)
        store.add_file(rep.model_dump())
        report.files.append(rep)
        report.read += rep.read
        report.inserted += rep.inserted
        report.duplicates += rep.duplicates
        report.error_count += len(errors)
        room = MAX_REPORTED_ERRORS - len(report.errors)
        if room > 0:
            report.errors.extend(errors[:room])
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _flush(buf: list[dict[str, Any]], st: _FileState, store: Store, progress: Callable[[int], None] | None) -> None:
    if not buf:
        return
    st.skew.learn(buf)
    st.skew.apply(buf)
    st.rep.read += len(buf)
    st.rep.missing_timestamps += sum(1 for r in buf if r.get("ts") is None)
    new = store.insert_events(buf)
    st.rep.inserted += new
    st.rep.duplicates += len(buf) - new
    if progress:
        progress(len(buf))
