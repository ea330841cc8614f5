"""Sigma -> DuckDB SQL: SigmaHQ's pySigma SQLite backend with the DuckDB dialect differences.

Why this and not ``pysigma-backend-duckdb``: that package (north.sh, 0.1.x) leaves NOT over
absent fields three-valued (``NOT User='SYSTEM'`` drops every event without a ``User``) and does
not escape LIKE wildcards in values. SigmaHQ's SQLite backend (maintained with pySigma) gets the
semantics right (COALESCE at every NOT, escaped LIKE); DuckDB runs its SQL with five token changes:

- ``LIKE`` -> ``ILIKE`` (SQLite's LIKE is case-insensitive, DuckDB's is not; Sigma is);
- ``REGEXP`` -> ``regexp_matches()``;
- field names quoted with ``"`` (always), not backticks;
- numbers compared as text (every extracted field is VARCHAR; ``EventID='1'``), ranges via
  ``TRY_CAST``;
- plain ``=`` is case-insensitive because the detector compares lowercased columns with
  lowercased literals (:func:`fold_case`, below).

Keyword (field-less) detections, which the SQLite backend refuses, become a substring test on the
record's text (column ``KEYWORD_FIELD``); :func:`event_codes` finds the EventIDs a condition
requires so the detector reads only those events.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from sigma.backends.sqlite import sqliteBackend
from sigma.conversion.base import TextQueryBackend


class DuckDBSigmaBackend(sqliteBackend):
    name: ClassVar[str] = "secfoundry DuckDB (SigmaHQ SQLite backend, DuckDB dialect)"
    field_quote: ClassVar[str] = '"'
    field_quote_pattern = None  # always quote
    startswith_expression: ClassVar[str] = "{field} ILIKE '{value}%' ESCAPE '\\'"
    endswith_expression: ClassVar[str] = "{field} ILIKE '%{value}' ESCAPE '\\'"
    contains_expression: ClassVar[str] = "{field} ILIKE '%{value}%' ESCAPE '\\'"
    wildcard_match_expression: ClassVar[str] = "{field} ILIKE '{value}' ESCAPE '\\'"
    wildcard_match_str_expression: ClassVar[str] = "{field} ILIKE '{value}' ESCAPE '\\'"
    re_expression: ClassVar[str] = "regexp_matches({field}, '{regex}')"
    compare_op_expression: ClassVar[str] = "TRY_CAST({field} AS DOUBLE) {operator} {value}"
    # Keyword (full-text) detections: a substring of the event's text, case-insensitive (the
    # detector materializes the lowercased record as the column KEYWORD_FIELD).
    unbound_value_str_expression: ClassVar[str] = '"sigma:keywords" ILIKE \'%{value}%\' ESCAPE \'\\\''
    unbound_value_num_expression: ClassVar[str] = '"sigma:keywords" ILIKE \'%{value}%\' ESCAPE \'\\\''
    field_equals_field_startswith_expression = None
    field_equals_field_endswith_expression = None
    field_equals_field_contains_expression = None

    def convert_condition_val_str(self, cond: Any, state: Any) -> Any:
        v = self.convert_value_str(cond.value, state)
        if len(v) >= 2 and v[0] == v[-1] == "'":
            v = v[1:-1]
        return self.unbound_value_str_expression.format(value=v)

    def convert_condition_val_num(self, cond: Any, state: Any) -> Any:
        return TextQueryBackend.convert_condition_val_num(self, cond, state)

    def escape_and_quote_field(self, field_name: str) -> str:
        return '"' + field_name.replace('"', '""') + '"'

    def convert_condition_field_eq_val_num(self, cond: Any, state: Any) -> Any:
        return self.escape_and_quote_field(cond.field) + "='" + str(cond.value) + "'"


def make_backend(audit: bool = False) -> DuckDBSigmaBackend:
    """The backend with pySigma's Sysmon and Windows log source pipelines (log source -> EventID/Channel);
    ``audit``: pySigma's Windows audit pipeline instead of Sysmon's (process_creation -> Security 4688,
    registry -> 4657, with its field names)."""
    from sigma.pipelines.sysmon import sysmon_pipeline
    from sigma.pipelines.windows import windows_audit_pipeline, windows_logsource_pipeline

    first = windows_audit_pipeline() if audit else sysmon_pipeline()
    return DuckDBSigmaBackend(processing_pipeline=first + windows_logsource_pipeline())


def where_clause(query: str) -> str:
    """``SELECT * FROM logs WHERE <cond>`` -> ``<cond>``."""
    head, sep, cond = query.partition(" WHERE ")
    if not sep or not head.startswith("SELECT"):
        raise ValueError(f"unexpected query shape: {query[:80]!r}")
    return cond


def referenced_fields(cond: str) -> list[str]:
    """Double-quoted identifiers in a WHERE clause (string literals skipped)."""
    out: list[str] = []
    i, n = 0, len(cond)
    while i < n:
        c = cond[i]
        if c == "'":
            i += 1
            while i < n:
                if cond[i] == "'" and i + 1 < n and cond[i + 1] == "'":
                    i += 2
                    continue
                if cond[i] == "'":
                    break
                i += 1
            i += 1
        elif c == '"':
            j = i + 1
            buf = []
            while j < n:
                if cond[j] == '"' and j + 1 < n and cond[j + 1] == '"':
                    buf.append('"')
                    j += 2
                    continue
                if cond[j] == '"':
                    break
                buf.append(cond[j])
                j += 1
            out.append("".join(buf))
            i = j + 1
        else:
            i += 1
    return list(dict.fromkeys(out))


# -- case folding at materialization ------------------------------------------------------------------
# Sigma matching is case-insensitive except regular expressions (and ``|cased``). Rather than
# ``ILIKE ... ESCAPE`` (which DuckDB evaluates character by character, never as a substring
# search) and a NOCASE collation on every ``=``, the detector stores each field lowercased once per
# log-source group and the conditions are rewritten to compare with lowercased literals:
# ``ILIKE '%x%'`` -> ``contains(f, 'x')``, ``'%x'`` -> ``suffix``, ``'x%'`` -> ``starts_with``,
# ``'x'`` -> ``=``, anything with inner wildcards -> ``LIKE`` on the lowered text. Regular
# expressions and GLOB read a case-preserving copy of their field, named ``CASE_PREFIX + field``.
CASE_PREFIX = "cs:"
KEYWORD_FIELD = "sigma:keywords"
_STR = r"'(?:[^']|'')*'"
_ID = r'"(?:[^"]|"")*"'
_TOKENS = re.compile(
    rf"(?P<like>(?P<lf>{_ID}) ILIKE (?P<lp>{_STR}) ESCAPE '\\')"
    rf"|(?P<re>regexp_matches\((?P<rf>{_ID}), (?P<rp>{_STR}))"
    rf"|(?P<glob>(?P<gf>{_ID}) GLOB (?P<gp>{_STR}))"
    rf"|(?P<str>{_STR})|(?P<id>{_ID})")


def _cs(ident: str) -> str:
    return '"' + CASE_PREFIX + ident[1:]


def _like(field: str, lit: str) -> str:
    pat = lit[1:-1].replace("''", "'").lower()
    parts: list[str] = []  # literal text runs and the wildcards '%' / '_' (as None markers)
    kinds: list[str] = []
    i, buf = 0, []
    while i < len(pat):
        c = pat[i]
        if c == "\\" and i + 1 < len(pat):
            buf.append(pat[i + 1])
            i += 2
            continue
        if c == "%" and not buf and kinds and kinds[-1] == "%":
            i += 1  # '%%' is '%'
            continue
        if c in "%_":
            parts.append("".join(buf))
            kinds.append(c)
            buf = []
        else:
            buf.append(c)
        i += 1
    parts.append("".join(buf))
    q = lambda t: "'" + t.replace("'", "''") + "'"  # noqa: E731
    if not kinds:
        return f"{field}={q(parts[0])}"
    if "_" not in kinds and not any(parts):
        return f"({field} IS NOT NULL)"
    if kinds == ["%", "%"] and not parts[0] and not parts[2]:
        return f"contains({field}, {q(parts[1])})"
    if kinds == ["%"] and not parts[0]:
        return f"suffix({field}, {q(parts[1])})"
    if kinds == ["%"] and not parts[1]:
        return f"starts_with({field}, {q(parts[0])})"
    return f"{field} LIKE {lit.lower()} ESCAPE '\\'"


def fold_case(cond: str) -> str:
    """A compiled condition over lowercased field columns (see above)."""
    def sub(m: re.Match[str]) -> str:
        if m.group("like"):
            return _like(m.group("lf"), m.group("lp"))
        if m.group("re"):
            return f"regexp_matches({_cs(m.group('rf'))}, {m.group('rp')}"
        if m.group("glob"):
            return f"{_cs(m.group('gf'))} GLOB {m.group('gp')}"
        if m.group("str"):
            return m.group("str").lower()
        return m.group("id")

    return _TOKENS.sub(sub, cond)


def _top_level(expr: str, sep: str) -> list[str]:
    """Split on `` AND ``/`` OR `` at parenthesis depth 0 (outside quotes)."""
    out, depth, start, i, n = [], 0, 0, 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "'\"":
            j = i + 1
            while j < n:
                if expr[j] == c:
                    if j + 1 < n and expr[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and expr.startswith(sep, i):
            out.append(expr[start:i])
            start = i + len(sep)
            i = start
            continue
        i += 1
    out.append(expr[start:])
    return [p.strip() for p in out]


def _unwrap(expr: str) -> str:
    """Drop parentheses that enclose the whole expression."""
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for k, c in enumerate(expr):  # the first "(" must close at the very end
            depth += (c == "(") - (c == ")")
            if depth == 0 and k < len(expr) - 1:
                return expr
        expr = expr[1:-1].strip()
    return expr


_EID = re.compile(r"""^"EventID"='(\d+)'$""")


def event_codes(cond: str) -> list[str] | None:
    """The EventIDs a condition requires (a top-level conjunct ``"EventID"='n'`` or an OR of them,
    looking into nested ANDs), or None. Lets the detector read only those events of a log source."""
    for part in _top_level(_unwrap(cond), " AND "):
        part = _unwrap(part)
        alts = [_unwrap(a) for a in _top_level(part, " OR ")]
        codes = [m.group(1) for m in map(_EID.match, alts) if m]
        if codes and len(codes) == len(alts):
            return sorted(set(codes), key=int)
        if len(alts) == 1 and len(_top_level(part, " AND ")) > 1:
            sub = event_codes(part)
            if sub:
                return sub
    return None


_KW = re.compile(r"""contains\("sigma:keywords", ('(?:[^']|'')*')\)""")


def keyword_json_forms(cond: str) -> str:
    """Keyword tests run on the stored record text; in a JSON record a backslash or a quote is
    escaped (``C:\\Temp`` is stored ``C:\\\\Temp``), so such a keyword also matches its JSON-escaped form."""
    def sub(m: re.Match[str]) -> str:
        lit = m.group(1)
        if "\\" not in lit and '"' not in lit:
            return m.group(0)
        esc = lit.replace("\\", "\\\\").replace('"', '\\"')
        return f'({m.group(0)} OR contains("{KEYWORD_FIELD}", {esc}))'

    def sub_like(m: re.Match[str]) -> str:
        pat = m.group(1)  # LIKE-escaped: a literal backslash is two
        if "\\" not in pat and '"' not in pat:
            return m.group(0)
        esc = pat.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"')
        return f"""({m.group(0)} OR "{KEYWORD_FIELD}" LIKE {esc} ESCAPE '\\')"""

    return _KW_LIKE.sub(sub_like, _KW.sub(sub, cond))


_KW_LIKE = re.compile(r"""(?<!contains\()"sigma:keywords" LIKE ('(?:[^']|'')*') ESCAPE '\\'""")
