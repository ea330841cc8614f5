"""Small helpers shared by the parsers: UTC timestamps, stable event hashes, flattening, ints.

Timestamps are normalized to naive UTC datetimes (DuckDB ``TIMESTAMP``); anything that cannot be
read becomes ``None`` with a note, never an exception that would drop the row.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from typing import Any


EPOCH = datetime(1970, 1, 1)
# Sanity window: events outside it are kept but flagged (a broken clock, a masked test value).
OLDEST = datetime(1990, 1, 1)
_OFFSET_NO_COLON = re.compile(r"([+-]\d{2})(\d{2})$")
_SPACE_T = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d)")
_SYSLOG = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), 1)}


def event_hash(fmt: str, raw: str) -> str:
    """Stable id of a record: the same record read again (any file, any run) gets the same id.
    md5 (first 16 hex digits) because DuckDB computes the same function in the SQL ingest path."""
    return hashlib.md5((fmt + "\x00" + raw).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def parse_ts(value: Any) -> tuple[datetime | None, str]:
    """(naive UTC datetime or None, note). Accepts ISO 8601 (Z, +hh:mm, +hhmm, space separator),
    epoch seconds/milliseconds (int, float or numeric string), and syslog ``Mon dd hh:mm:ss``
    (no year: the current UTC year is assumed and said so)."""
    if value is None or value == "" or value == "-":
        return None, "missing"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_epoch(float(value))
    s = str(value).strip()
    if not s:
        return None, "missing"
    if s[0].isdigit() and s.replace(".", "", 1).isdigit():
        return _from_epoch(float(s))
    if "X" in s and not s.startswith(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")) and s[:4] == "XXXX":
        return None, "masked"
    t = s
    if t.endswith("Z") or t.endswith("z"):
        t = t[:-1] + "+00:00"
    else:
        t = _OFFSET_NO_COLON.sub(r"\1:\2", t)
    t = _SPACE_T.sub(r"\1T\2", t)
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        m = _SYSLOG.match(s)
        if m and m.group(1) in _MONTHS:
            year = datetime.now(timezone.utc).year
            try:
                dt = datetime(year, _MONTHS[m.group(1)], int(m.group(2)), int(m.group(3)), int(m.group(4)),
                              int(m.group(5)))
            except ValueError:
                return None, f"unparseable timestamp {s[:40]!r}"
            return dt, "syslog timestamp without year: current year assumed"
        return None, f"unparseable timestamp {s[:40]!r}"
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return _check(dt)


def _from_epoch(x: float) -> tuple[datetime | None, str]:
    if x > 1e14:  # microseconds
        x /= 1e6
    elif x > 1e11:  # milliseconds
        x /= 1e3
    try:
        return _check(EPOCH + timedelta(seconds=x))
    except OverflowError:
        return None, f"unparseable epoch {x!r}"


def _check(dt: datetime) -> tuple[datetime | None, str]:
    if dt < OLDEST:
        return dt, "implausible timestamp (before 1990)"
    if dt > datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(days=1):
        return dt, "implausible timestamp (in the future)"
    return dt, ""


def fmt_offset(delta: timedelta) -> str:
    secs = int(round(delta.total_seconds()))
    sign = "+" if secs >= 0 else "-"
    secs = abs(secs)
    return f"{sign}{secs // 3600}h{(secs % 3600) // 60:02d}m"


def to_int(v: Any) -> int | None:
    if v is None or v == "" or v == "-":
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v if -(2 ** 63) < v < 2 ** 63 else None
    try:
        s = str(v).strip()
        return int(s, 16) if s.lower().startswith("0x") else int(float(s))
    except (ValueError, OverflowError):
        return None


def flatten(d: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists of scalars stay lists; depth-limited."""
    out = {} if out is None else out
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and depth < 6:
            flatten(v, key + ".", out, depth + 1)
        else:
            out[key] = v
    return out


def s(v: Any) -> str:
    """A field as text ('' for missing)."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return ",".join(s(x) for x in v)
    return str(v)


def basename(path: str) -> str:
    p = path.replace("\\", "/")
    return p.rsplit("/", 1)[-1]
