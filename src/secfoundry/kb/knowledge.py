"""``KnowledgeBase``: the Python API behind ``secfoundry kb`` (sync, status, show, search, ids).

    from secfoundry.kb import KnowledgeBase
    kb = KnowledgeBase.open()                      # SECFOUNDRY_HOME/kb (or SECFOUNDRY_KB)
    kb.sync(mirror="../shared/data/mirror")        # incremental, resumable
    kb.show("T1059.001").sections["detections"]
    kb.search("credential dumping from lsass", type="technique", k=10)
    kb.resolve("T1086")                            # revoked -> "T1059.001"
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterable

from secfoundry.kb import ids as idmod
from secfoundry.kb.store import SourceRow, Store

if TYPE_CHECKING:  # pragma: no cover
    from secfoundry.kb.dense import DenseIndex, DensePolicy, Embedder
    from secfoundry.kb.rendered import RenderStats
    from secfoundry.kb.search import Hit, Searcher
    from secfoundry.kb.show import Entry
    from secfoundry.kb.sync import KBPaths, Progress, SyncReport


def default_path() -> Path:
    """``SECFOUNDRY_KB`` or ``SECFOUNDRY_HOME/kb``."""
    env = os.environ.get("SECFOUNDRY_KB")
    if env:
        return Path(env).expanduser()
    from secfoundry.core.paths import home

    return home() / "kb"


@dataclass
class Status:
    path: str
    sources: list[SourceRow]
    counts: dict[str, int]
    types: dict[str, int]
    dense: dict[str, Any] = field(default_factory=dict)
    last_run: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = [s.to_dict() for s in self.sources]
        return d


class KnowledgeBase:
    def __init__(self, path: str | os.PathLike[str] | None = None, *, embedder: "Embedder | str | None" = None):
        from secfoundry.kb.sync import KBPaths

        self.paths: KBPaths = KBPaths.at(path or default_path())
        self._embedder_spec = embedder
        self._embedder: Embedder | None = embedder if embedder is not None and not isinstance(embedder, str) else None
        self._store: Store | None = None
        self._searcher: Searcher | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, embedder: "Embedder | str | None" = None
             ) -> "KnowledgeBase":
        return cls(path, embedder=embedder)

    # -- plumbing ---------------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.paths.db)
        return self._store

    @property
    def embedder(self) -> "Embedder":
        """The embedder the dense index was built with (loaded once, kept warm)."""
        if self._embedder is None:
            from secfoundry.kb.dense import make_embedder

            spec = self._embedder_spec if isinstance(self._embedder_spec, str) else None
            if spec is None and (self.store.get_meta("dense_model") or "").startswith("hashing"):
                spec = "hashing"
            kw: dict[str, Any] = {}
            model = self.store.get_meta("dense_model") or ""
            if spec in (None, "minilm") and model.startswith("all-MiniLM"):
                # Same settings as the index (max length, dtype), so query and index vectors match.
                parts = model.split("/")
                kw = {"max_seq_length": int(parts[1].removeprefix("len")), "dtype": parts[2]}
            self._embedder = make_embedder(spec, **kw)
        return self._embedder

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self._searcher = None

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- API ----------------------------------------------------------------------------------------------
    def sync(self, mirror: str | os.PathLike[str] | None = None, sources: Iterable[str] | str | None = None, *,
             force: bool = False, dense: bool = True, policy: "DensePolicy | None" = None,
             progress: "Progress | None" = None, fetcher: Any = None, connectors: dict[str, Any] | None = None,
             after_source: Any = None, render: bool = True) -> "SyncReport":
        from secfoundry.kb.sync import sync as run_sync
        from secfoundry.core.paths import mirror_dir

        if isinstance(sources, str):
            sources = [s for s in sources.split(",") if s.strip()]
        m = mirror_dir(mirror)
        report = run_sync(self.store, self.paths, mirror=m, sources=sources, force=force, dense=dense,
                          embedder=lambda: self.embedder, policy=policy, progress=progress, fetcher=fetcher,
                          connectors=connectors, after_source=after_source, render=render)
        self._searcher = None  # the index changed
        return report

    def render(self, *, force: bool = False, progress: Any = None) -> "RenderStats":
        """Materialise every entry's ``kb show`` JSON now (``sync`` does it by default)."""
        from secfoundry.kb.rendered import render_all

        return render_all(self.store, force=force, progress=progress)

    def status(self) -> Status:
        from secfoundry.kb.dense import DenseIndex

        st = self.store
        dense: dict[str, Any] = {"state": st.get_meta("dense_state") or "absent",
                                 "model": st.get_meta("dense_model") or ""}
        vec, ent = DenseIndex.files(self.paths.dense)
        if vec.exists():
            dense["vectors_bytes"] = vec.stat().st_size
            dense["rows"] = int(_npy_rows(vec))
            dense["built"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(vec.stat().st_mtime))
        return Status(path=str(self.paths.db), sources=st.sources(), counts=st.counts(), types=st.type_counts(),
                      dense=dense, last_run=st.last_run())

    def show(self, id: str) -> "Entry | None":
        from secfoundry.kb.show import build_entry

        return build_entry(self.store, id)

    @property
    def searcher(self) -> "Searcher":
        if self._searcher is None:
            from secfoundry.kb.dense import DenseIndex
            from secfoundry.kb.search import Searcher

            index: DenseIndex | None = DenseIndex.load(self.paths.dense)
            self._searcher = Searcher(self.store, index, self.embedder if index is not None else None)
        return self._searcher

    def search(self, q: str, type: str | Iterable[str] | None = None, k: int = 10, *,
               exclude: Collection[tuple[str, str]] | None = None, lanes: Iterable[str] | None = None
               ) -> "list[Hit]":
        kw: dict[str, Any] = {"exclude": exclude}
        if lanes is not None:
            kw["lanes"] = tuple(lanes)
        return self.searcher.search(q, type=type, k=k, **kw)

    def warm(self) -> None:
        """Load the index and the query embedder now (first-query latency otherwise)."""
        s = self.searcher
        _ = s.catalog
        if s.dense is not None:
            s.embed_query("warm up")

    def validate(self, id: str) -> idmod.IdCheck:
        return idmod.validate(id, self)

    def resolve(self, id: str) -> str | None:
        """Current canonical id: revoked/deprecated ids follow their replacement chain."""
        return idmod.resolve(id, self)


def _npy_rows(path: Path) -> int:
    import numpy as np

    return int(np.load(path, mmap_mode="r").shape[0])
