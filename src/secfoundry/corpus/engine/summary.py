"""Run summaries, computed from the partition markers (so a resumed run reports everything)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from secfoundry.corpus.engine.storage import PhaseStore


@dataclass
class PhaseSummary:
    phase: str
    stage: str
    partitions: int = 0
    partitions_done: int = 0
    skipped: int = 0  # partitions already complete from an earlier run
    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # "step/reason" -> documents
    by_source: dict[str, int] = field(default_factory=dict)  # documents out per source
    quarantined: int = 0
    input_errors: dict[str, str] = field(default_factory=dict)  # collect tasks whose input failed
    errors: dict[str, str] = field(default_factory=dict)  # partitions that failed (not committed)
    seconds: float = 0.0

    @property
    def docs_per_s(self) -> float:
        done = self.partitions_done - self.skipped
        return (self.docs_in * done / max(1, self.partitions_done)) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RunSummary:
    recipe: str
    out: str
    phases: list[PhaseSummary]
    seconds: float
    output_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["documents_out"] = self.phases[-1].docs_out if self.phases else 0
        return d

    def render(self, console: Any) -> None:
        from rich.table import Table

        t = Table(title=f"corpus run '{self.recipe}' → {self.out}  ({self.seconds:.1f} s)")
        for col in ("phase", "partitions", "docs in", "docs out", "kept %", "chars kept %", "docs/s", "s"):
            t.add_column(col, justify="left" if col == "phase" else "right", no_wrap=col == "phase")
        for p in self.phases:
            kept = f"{100 * p.docs_out / p.docs_in:.1f}" if p.docs_in else "-"
            # characters show what documents hide: a step that cuts spans keeps every document
            ckept = f"{100 * p.chars_out / p.chars_in:.1f}" if p.chars_in else "-"
            parts = f"{p.partitions_done}/{p.partitions}" + (" (resumed)" if p.skipped else "")
            rate = f"{p.docs_in / p.seconds:,.0f}" if p.seconds > 0 and not p.skipped else "-"
            t.add_row(p.phase, parts, f"{p.docs_in:,}", f"{p.docs_out:,}", kept, ckept, rate, f"{p.seconds:.1f}")
        console.print(t)
        d = Table(title="dropped, by phase and reason (details: <phase>/excluded/*.parquet)")
        for col in ("phase", "reason", "docs"):
            d.add_column(col, justify="right" if col == "docs" else "left", no_wrap=col != "reason")
        for p in self.phases:
            items = sorted(p.dropped.items(), key=lambda kv: -kv[1])
            for k, v in items[:8]:
                d.add_row(p.phase, k, f"{v:,}")
            if len(items) > 8:
                d.add_row(p.phase, f"… {len(items) - 8} more reasons", f"{sum(v for _, v in items[8:]):,}")
        if d.row_count:
            console.print(d)
        for p in self.phases:
            for key, err in p.input_errors.items():
                console.print(f"[red]{p.phase}/{key}: input failed: {err}[/]")


def add_marker(acc: Any, m: dict[str, Any], dropped: Counter, by_source: Counter) -> None:
    """Add one partition marker's counts to ``acc`` (documents and characters in/out, quarantined
    entries) and to the drop-reason and per-source counters."""
    acc.docs_in += int(m.get("docs_in", 0))
    acc.docs_out += int(m.get("docs_out", 0))
    acc.chars_in += int(m.get("chars_in", m.get("chars_out", 0)))
    acc.chars_out += int(m.get("chars_out", 0))
    acc.quarantined += int(m.get("quarantined", 0))
    dropped.update(m.get("dropped", {}))
    by_source.update(m.get("by_source", {}))


def summarise_phase(phase: str, stage: str, store: PhaseStore, keys: list[str], *, skipped: int = 0,
                    seconds: float = 0.0, errors: dict[str, str] | None = None) -> PhaseSummary:
    s = PhaseSummary(phase=phase, stage=stage, partitions=len(keys), skipped=skipped, seconds=seconds,
                     errors=dict(errors or {}))
    dropped: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    wanted = set(keys)
    for m in store.markers():
        if m["key"] not in wanted:
            continue
        s.partitions_done += 1
        add_marker(s, m, dropped, by_source)
        if m.get("error"):
            s.input_errors[m["key"]] = m["error"]
    s.dropped = dict(dropped.most_common())
    s.by_source = dict(by_source.most_common())
    return s
