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
- plain ``=`` is made case-insensitive by the detector's ``default_collation = nocase``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sigma.backends.sqlite import sqliteBackend


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
    field_equals_field_startswith_expression = None
    field_equals_field_endswith_expression = None
    field_equals_field_contains_expression = None

    def escape_and_quote_field(self, field_name: str) -> str:
        return '"' + field_name.replace('"', '""') + '"'

    def convert_condition_field_eq_val_num(self, cond: Any, state: Any) -> Any:
        return self.escape_and_quote_field(cond.field) + "='" + str(cond.value) + "'"


def make_backend() -> DuckDBSigmaBackend:
    """The backend with pySigma's Sysmon and Windows log source pipelines (log source -> EventID/Channel)."""
    from sigma.pipelines.sysmon import sysmon_pipeline
    from sigma.pipelines.windows import windows_logsource_pipeline

    return DuckDBSigmaBackend(processing_pipeline=sysmon_pipeline() + windows_logsource_pipeline())


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
