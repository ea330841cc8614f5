"""Stage storage: Parquet partitions with completion markers, written atomically.

Layout of one phase directory (``OUT/<NN>-<stage>[-<k>-<step>]/``)::

    _plan.json                 the partitions this phase will produce (fixed on first run)
    data/<key>[-<n>].parquet   kept documents (id, text, source, url, license, title, version,
                               metadata JSON string)
    excluded/<key>.parquet     dropped documents + ``step`` and ``reason`` columns (audit trail)
    markers/<key>.json         the partition's _SUCCESS marker: files and counts (commit point)
    quarantine/<key>.jsonl     bad input entries met while collecting
    _SUCCESS                   the whole phase is complete (JSON totals)

Every file is written under a unique temporary name and renamed into place; the marker is
written last. A partition without a marker is redone from scratch on resume, overwriting its
deterministic file names, so a kill at any point neither loses nor duplicates a document.
Readers only ever use the files that markers list.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from secfoundry.core.documents import Document

DOC_COLUMNS = ["id", "text", "source", "url", "license", "title", "version", "metadata"]
DOC_SCHEMA = pa.schema([(c, pa.string()) for c in DOC_COLUMNS])
EXCLUDED_SCHEMA = pa.schema([*[(c, pa.string()) for c in DOC_COLUMNS], ("step", pa.string()),
                             ("reason", pa.string())])


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def _columns(docs: list[Document]) -> dict[str, list[str]]:
    # Column-wise, without dataclasses.asdict (which deep-copies every metadata dict and was
    # 60% of a partition's I/O time); same values as Document.to_row.
    return {
        "id": [d.id for d in docs], "text": [d.text for d in docs], "source": [d.source for d in docs],
        "url": [d.url or "" for d in docs], "license": [d.license or "" for d in docs],
        "title": [d.title or "" for d in docs], "version": [d.version or "" for d in docs],
        "metadata": [json.dumps(d.metadata, sort_keys=True, default=str) for d in docs],
    }


def docs_table(docs: Iterable[Document]) -> pa.Table:
    return pa.table(_columns(list(docs)), schema=DOC_SCHEMA)


def excluded_table(items: Iterable[Any]) -> pa.Table:
    items = list(items)
    cols = _columns([it.doc for it in items])
    cols["step"] = [str(getattr(it, "step", "") or "") for it in items]
    cols["reason"] = [str(getattr(it, "reason", "") or "") for it in items]
    return pa.table(cols, schema=EXCLUDED_SCHEMA)


def write_table(table: pa.Table, path: Path, compression: str = "zstd") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp, compression=compression)
    os.replace(tmp, path)


def read_documents(path: Path) -> list[Document]:
    table = pq.read_table(path)
    cols = {c: table.column(c).to_pylist() for c in table.column_names}
    n = table.num_rows
    empty = [""] * n

    def col(name: str) -> list[Any]:
        return cols.get(name) or empty

    out = []
    for i, (did, text, src, url, lic, title, ver, meta) in enumerate(zip(
            col("id"), col("text"), col("source"), col("url"), col("license"), col("title"), col("version"),
            col("metadata"))):
        out.append(Document(id=did, text=text, source=src or "", url=url or "", license=lic or "", title=title or "",
                            version=ver or "", metadata=json.loads(meta) if meta else {}))
    return out


class PhaseStore:
    """One phase directory: plan, partitions, markers."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.excluded_dir = self.root / "excluded"
        self.markers_dir = self.root / "markers"
        self.state_dir = self.root / "_state"

    def marker_path(self, key: str) -> Path:
        return self.markers_dir / f"{key}.json"

    # ------------------------------------------------------------------ plan
    def load_plan(self) -> dict[str, Any] | None:
        p = self.root / "_plan.json"
        return json.loads(p.read_text()) if p.exists() else None

    def save_plan(self, plan: dict[str, Any]) -> None:
        atomic_write_json(self.root / "_plan.json", plan)

    # ------------------------------------------------------------------ markers
    def marker(self, key: str) -> dict[str, Any] | None:
        p = self.marker_path(key)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:  # cannot happen with atomic writes; treat as not done
            return None

    def done_keys(self) -> set[str]:
        if not self.markers_dir.is_dir():
            return set()
        return {p.name[:-5] for p in self.markers_dir.glob("*.json")}

    def markers(self) -> list[dict[str, Any]]:
        out = []
        for key in sorted(self.done_keys()):
            m = self.marker(key)
            if m is not None:
                out.append(m)
        return out

    def committed_files(self, plan_keys: list[str] | None = None) -> list[Path]:
        """The data files of completed partitions, in plan order (the next phase's input)."""
        keys = plan_keys if plan_keys is not None else sorted(self.done_keys())
        files: list[Path] = []
        for key in keys:
            m = self.marker(key)
            if m is not None:
                files += [self.data_dir / f for f in m["files"]]
        return files

    @property
    def complete(self) -> bool:
        return (self.root / "_SUCCESS").exists()

    def mark_complete(self, totals: dict[str, Any]) -> None:
        atomic_write_json(self.root / "_SUCCESS", totals)

    # ------------------------------------------------------------------ commit
    def write_data(self, name: str, docs: list[Document], compression: str = "zstd") -> str:
        write_table(docs_table(docs), self.data_dir / name, compression)
        return name

    def link_data(self, name: str, src: Path) -> str:
        """Commit an existing Parquet file unchanged: a hard link (files are never modified in
        place, so sharing the inode is safe), or a copy across file systems."""
        dest = self.data_dir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        return name

    def write_excluded(self, name: str, dropped: list[Any], compression: str = "zstd") -> str:
        write_table(excluded_table(dropped), self.excluded_dir / name, compression)
        return name

    def write_marker(self, key: str, files: list[str], excluded_files: list[str], stats: dict[str, Any],
                     quarantine: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Commit a partition: its quarantine log, then its marker (the commit point)."""
        if quarantine:
            body = "".join(json.dumps(q, default=str) + "\n" for q in quarantine).encode()
            atomic_write_bytes(self.root / "quarantine" / f"{key}.jsonl", body)
        marker = {"key": key, "files": files, "excluded_files": excluded_files, **stats}
        atomic_write_json(self.marker_path(key), marker)
        return marker

    def clean_strays(self) -> int:
        """Remove temp files and data files no marker lists (left by killed attempts)."""
        listed: set[str] = set()
        excl: set[str] = set()
        for m in self.markers():
            listed.update(m["files"])
            excl.update(m.get("excluded_files", []))
        n = 0
        for d, keep in ((self.data_dir, listed), (self.excluded_dir, excl)):
            if not d.is_dir():
                continue
            for p in d.iterdir():
                if p.name.startswith(".") or p.name not in keep:
                    p.unlink(missing_ok=True)
                    n += 1
        for p in self.root.rglob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
        return n
