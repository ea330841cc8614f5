"""Shared by the connector tests: parse a connector's mirror snapshot; build test archives."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

from secfoundry.core.errors import Quarantine


def parse_mirror(src: Any, mirror: Path) -> tuple[Any, Any, Quarantine, dict[str, Any]]:
    """(connector, snapshot, quarantine, records by id) for the connector's mirror copy."""
    snap = src.fetch(mirror)
    q = Quarantine()
    return src, snap, q, {r.id: r for r in src.records(snap, q)}


def make_tgz(path: Path, members: dict[str, bytes]) -> Path:
    """A .tar.gz with the given members (fixed mtime, so bytes are reproducible)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return path
