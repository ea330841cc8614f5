"""Scoring answers someone else produced (``secfoundry eval score``).

The predictions file has one answer per row, in benchmark order, in a named column (TSV, CSV
or JSONL). By default the cells are *extracted* answers (a letter, a CWE id, a CVSS vector, an
actor name), scored with the benchmark's rules for such answers (CTIBench: its authors'
evaluation notebook); ``raw=True`` treats them as full model outputs and applies the protocol's
answer extraction first. Empty or unparseable cells count as invalid answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_predictions(path: Path, column: str) -> list[str]:
    """The ``column`` of a TSV/CSV (header row) or JSONL file, as strings ("" for empty/missing)."""
    from secfoundry.core.errors import InputError
    from secfoundry.eval.benchmarks._io import read_jsonl, read_tsv

    if not path.is_file():
        raise InputError("no such file", file=str(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = read_jsonl(path)
        for i, r in enumerate(rows, start=1):
            if column not in r:
                raise InputError("missing field", file=str(path), row=i, field=column)
        return ["" if r[column] is None else str(r[column]) for r in rows]
    if suffix == ".csv":
        import csv
        import io

        text = path.read_text(encoding="utf-8")
        reader = csv.DictReader(io.StringIO(text))
        if column not in (reader.fieldnames or []):
            raise InputError(f"missing column (header has {reader.fieldnames})", file=str(path), row="header",
                             field=column)
        return [r.get(column) or "" for r in reader]
    return [r[column] for r in read_tsv(path, [column])]


def score_predictions(benchmark: str, cells: list[str], *, protocol: str = "official",
                      data_dir: Path | str | None = None, raw: bool = False, instruct: bool = True,
                      source: str = "predictions") -> dict[str, Any]:
    """Score one answer per benchmark item (in benchmark order). Returns the task's score dict."""
    from secfoundry.core.errors import InputError
    from secfoundry.eval.benchmarks import get_task
    from secfoundry.eval.task import Protocol, Request, Response

    task = get_task(benchmark)
    proto = Protocol(name=protocol, instruct=instruct)  # type: ignore[arg-type]
    items = task.load(Path(data_dir) if data_dir else None)
    if len(cells) != len(items):
        raise InputError(f"has {len(cells)} answers but {benchmark} has {len(items)} items (one row per item, "
                         "in benchmark order)", file=source)
    keep = {it.id for it in task.eligible(items, proto)}
    pairs = [(it, c) for it, c in zip(items, cells) if it.id in keep]
    parsed = []
    for it, cell in pairs:
        if raw:
            req = Request(item_id=it.id, kind="generate", prompt="")
            parsed.append(task.parse(it, req, Response(item_id=it.id, text=cell), proto))
        else:
            parsed.append(task.parse_prediction(it, cell, proto))
    out = task.score([it for it, _ in pairs], parsed, proto)
    return {"benchmark": task.name, "protocol": protocol, "headline": task.headline, **out}
