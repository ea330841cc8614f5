"""The sample store of a run directory: ``samples.jsonl``, ``prefixes.jsonl`` and the JSON files.

``samples.jsonl`` holds one JSON line per answered request, appended and fsync'ed per batch, so
an interrupted run resumes from what was already written. A sample is keyed by
(benchmark, trial, item id, variant). Shared few-shot prefixes are stored once in
``prefixes.jsonl`` and referred to by sha256.

Readers outside eval (experiments, reports) use ``read_samples``; the record layout is private
to this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from secfoundry.core.errors import InputError
from secfoundry.eval.task import Item, Parsed, Request, Response

SAMPLES = "samples.jsonl"
PREFIXES = "prefixes.jsonl"
RUN_FILES = (SAMPLES, "results.json", PREFIXES, "judgements.jsonl")  # what --fresh discards

SampleKey = tuple[str, int, str, str]  # benchmark, trial, item id, variant


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON values (sets sorted, dataclasses as dicts, NaN/inf as null)."""
    if isinstance(x, (set, frozenset)):
        return sorted(jsonable(v) for v in x)
    if isinstance(x, tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, list):
        return [jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return jsonable(dataclasses.asdict(x))
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def write_json(path: Path, obj: Any) -> None:
    """Atomic write (a crash leaves the old file or the new one, never half of one)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(jsonable(obj), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _key(rec: dict[str, Any]) -> SampleKey:
    return (rec["benchmark"], int(rec["trial"]), str(rec["item_id"]), rec.get("variant", ""))


class SampleStore:
    """``samples.jsonl``: one JSON line per answered request, durable per batch."""

    def __init__(self, path: Path):
        self.path = path
        self.done: dict[SampleKey, dict[str, Any]] = {}
        if path.exists():
            self._load()
        self._fh = open(path, "a", encoding="utf-8")

    def _load(self) -> None:
        raw = self.path.read_bytes()
        # A crash can leave a partial last line: drop it so appends start on a fresh line.
        if raw and not raw.endswith(b"\n"):
            cut = raw.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
            raw = raw[:cut]
        for lineno, line in enumerate(raw.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key = _key(rec)
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(f"unreadable sample ({e}); remove the line or rerun with --fresh",
                                 file=str(self.path), row=lineno) from e
            self.done[key] = rec

    def get(self, benchmark: str, trial: int, req: Request) -> dict[str, Any] | None:
        return self.done.get((benchmark, trial, req.item_id, req.variant))

    def needs_answer(self, benchmark: str, trial: int, req: Request) -> bool:
        """Not answered yet, or answered with a backend error (retried: a server may be back)."""
        rec = self.get(benchmark, trial, req)
        return rec is None or "error" in rec

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        recs = list(records)
        if not recs:
            return
        self._fh.write("".join(json.dumps(jsonable(r), ensure_ascii=False) + "\n" for r in recs))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        for r in recs:
            self.done[_key(r)] = r

    def close(self) -> None:
        self._fh.close()


def response_from_sample(rec: dict[str, Any]) -> Response:
    return Response(item_id=str(rec["item_id"]), text=rec.get("output"), logprobs=rec.get("logprobs"),
                    error=rec.get("error"))


def prefix_sha256(prefix: str) -> str:
    return hashlib.sha256(prefix.encode()).hexdigest()


def sample_record(name: str, trial: int, item: Item, req: Request, resp: Response, parsed: Parsed,
                  correct: bool) -> dict[str, Any]:
    """The ``samples.jsonl`` line of one answered request."""
    rec: dict[str, Any] = {
        "benchmark": name, "trial": trial, "item_id": item.id, "variant": req.variant,
        "kind": req.kind, "prompt": req.prompt,
        "prefix_sha256": prefix_sha256(req.prefix) if req.prefix else None,
    }
    if req.kind == "choice":
        rec["choices"] = req.choices
        rec["choice_labels"] = req.choice_labels
        rec["logprobs"] = resp.logprobs
    else:
        rec["output"] = resp.text
    if resp.error is not None:
        rec["error"] = resp.error
    if req.meta:
        rec["request_meta"] = req.meta
    rec.update({"answer": parsed.answer, "lenient": parsed.lenient, "valid": parsed.valid, "gold": item.gold,
                "correct": correct})
    judged = {k: v for k, v in parsed.meta.items() if k.startswith("judge")}
    if judged:  # an LLM judge graded this answer: its prompt, raw output and score (eval/judge.py)
        rec["judge"] = judged
    return rec


def record_prefixes(out: Path, name: str, plan: Iterable[Any]) -> None:
    """Store each new shared few-shot prefix of ``plan`` (trial plans) once in prefixes.jsonl."""
    path = out / PREFIXES
    seen = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                seen.add(json.loads(line)["sha256"])
            except (ValueError, KeyError):
                continue
    new = []
    for tp in plan:
        for p in sorted({r.prefix for r in tp.requests if r.prefix}):
            h = prefix_sha256(p)
            if h not in seen:
                seen.add(h)
                new.append({"sha256": h, "benchmark": name, "trial": tp.trial,
                            "shot_ids": [s.id for s in tp.shots], "prefix": p})
    if new:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new))


@dataclass(frozen=True)
class Sample:
    """One answered request as readers outside the runner see it."""

    benchmark: str
    trial: int
    item_id: str
    variant: str
    answer: Any
    lenient: Any
    gold: Any
    valid: bool
    correct: bool
    error: str | None = None

    @property
    def lenient_correct(self) -> bool:
        """The lenient extraction equals gold (exact comparison, as recorded)."""
        return self.lenient == self.gold


def read_samples(run_dir: Path | str, benchmark: str | None = None) -> Iterator[Sample]:
    """The samples of a run directory (the latest line per key wins), optionally of one benchmark."""
    path = Path(run_dir) / SAMPLES
    if not path.exists():
        raise InputError("no samples in this run directory", file=str(path))
    latest: dict[SampleKey, dict[str, Any]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            latest[_key(rec)] = rec
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"unreadable sample ({e})", file=str(path), row=lineno) from e
    for (bench, trial, item_id, variant), rec in latest.items():
        if benchmark is not None and bench != benchmark:
            continue
        yield Sample(benchmark=bench, trial=trial, item_id=item_id, variant=variant, answer=rec.get("answer"),
                     lenient=rec.get("lenient"), gold=rec.get("gold"), valid=bool(rec.get("valid")),
                     correct=bool(rec.get("correct")), error=rec.get("error"))
