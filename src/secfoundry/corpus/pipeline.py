"""Run a corpus recipe end to end: collect → process → prepare, on Ray Data, resumable.

    from secfoundry.corpus.pipeline import run_recipe, load_documents
    summary = run_recipe("configs/corpus/quickstart.yaml", "runs/corpus", mirror="../shared/data/mirror")
    docs = load_documents("runs/corpus")            # the last phase's documents

The engine lives in ``corpus/engine`` (recipe, steps, storage, runner); this module is the
public entry point used by the CLI, tests and later stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from secfoundry.corpus.engine.recipe import Recipe
from secfoundry.corpus.engine.runner import PhaseFailed, Runner
from secfoundry.corpus.engine.storage import PhaseStore, read_documents
from secfoundry.corpus.engine.summary import RunSummary
from secfoundry.core.documents import Document

__all__ = ["PhaseFailed", "Recipe", "RunSummary", "load_documents", "phase_dirs", "run_recipe", "run_status"]


def run_recipe(recipe: Recipe | str | Path, out: str | Path, *, mirror: str | None = None,
               ray_address: str | None = None, until: str | None = None, console: Any = None,
               progress: bool = True, **kw: Any) -> RunSummary:
    if not isinstance(recipe, Recipe):
        recipe = Recipe.from_yaml(recipe)
    return Runner(recipe, Path(out), mirror=mirror, ray_address=ray_address, until=until, console=console,
                  progress=progress, **kw).run()


def phase_dirs(out: str | Path) -> list[Path]:
    """Phase directories of a run, in order (``00-collect``, ``01-process``, ...)."""
    out = Path(out)
    return sorted(d for d in out.iterdir() if d.is_dir() and d.name[:2].isdigit() and (d / "_plan.json").exists())


def _phase(out: str | Path, phase: str | None) -> Path:
    dirs = phase_dirs(out)
    if not dirs:
        raise FileNotFoundError(f"{out}: no corpus run here")
    if phase is None:
        return dirs[-1]
    for d in dirs:
        if d.name == phase or d.name.split("-", 1)[1] == phase:
            return d
    matches = [d for d in dirs if d.name.split("-", 1)[1].startswith(phase)]
    if matches:
        return matches[-1]
    raise KeyError(f"{out}: no phase {phase!r} (have {[d.name for d in dirs]})")


def iter_documents(out: str | Path, phase: str | None = None) -> Iterator[Document]:
    store = PhaseStore(_phase(out, phase))
    plan = store.load_plan() or {}
    for f in store.committed_files(plan.get("keys")):
        yield from read_documents(f)


def load_documents(out: str | Path, phase: str | None = None) -> list[Document]:
    """Documents a phase kept (default: the last phase), from committed partitions only."""
    return list(iter_documents(out, phase))


def load_excluded(out: str | Path, phase: str | None = None):
    """The exclusion table of a phase (documents + ``step``/``reason``) as a pyarrow Table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from secfoundry.corpus.engine.storage import EXCLUDED_SCHEMA

    store = PhaseStore(_phase(out, phase))
    tables = [pq.read_table(store.excluded_dir / f) for m in store.markers() for f in m.get("excluded_files", [])]
    return pa.concat_tables(tables) if tables else EXCLUDED_SCHEMA.empty_table()


def run_status(out: str | Path) -> list[dict[str, Any]]:
    """Per phase: partitions done/planned, documents in/out, complete or not (no Ray needed)."""
    rows = []
    for d in phase_dirs(out):
        store = PhaseStore(d)
        plan = store.load_plan() or {"keys": []}
        markers = [m for m in store.markers() if m["key"] in set(plan["keys"])]
        rows.append({"phase": d.name, "planned": len(plan["keys"]), "done": len(markers),
                     "docs_in": sum(int(m.get("docs_in", 0)) for m in markers),
                     "docs_out": sum(int(m.get("docs_out", 0)) for m in markers),
                     "dropped": sum(sum(m.get("dropped", {}).values()) for m in markers),
                     "complete": store.complete,
                     "input_errors": sum(1 for m in markers if m.get("error"))})
    return rows
