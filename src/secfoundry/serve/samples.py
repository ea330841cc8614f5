"""Sample jobs for a first look (``make run``): one per available application, read from the
shared data directory by the operator's command (never through an endpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

# app job kind -> builder(data_dir) -> (request model instance, label) or None when the file is absent.
SAMPLES: dict[str, Callable[[Path], Any]] = {}


def preload_samples(svc: Any, data_dir: Path, owner: str) -> list[str]:
    notes = []
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return [f"no shared data at {data_dir}: nothing preloaded"]
    for kind, build in SAMPLES.items():
        if kind not in svc.jobs.kinds:
            continue
        try:
            made = build(data_dir)
        except Exception as e:  # noqa: BLE001 - a sample that cannot be read is reported, the rest go on
            notes.append(f"{kind}: not preloaded ({type(e).__name__}: {e})")
            continue
        if made is None:
            notes.append(f"{kind}: sample file not found under {data_dir}")
            continue
        request, label = made
        job = svc.jobs.submit(kind, request, owner=owner)
        notes.append(f"{kind} on {label} -> /ui/jobs/{job['id']}")
    return notes
