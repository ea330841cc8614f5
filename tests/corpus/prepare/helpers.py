from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from secfoundry.corpus.step import GlobalContext
from secfoundry.core.documents import Document


def write_docs(path: Path, docs: list[Document]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([d.to_row() for d in docs]), path)
    return path


def fit_and_run(step, docs: list[Document], tmp: Path, parts: int = 2, num_cpus: int = 1):
    """Run a global step the way the engine does: fit over partitions, load, run per partition."""
    n = max(1, len(docs) // parts + (len(docs) % parts > 0))
    files = [write_docs(tmp / "in" / f"part-{i:05d}.parquet", docs[i * n:(i + 1) * n]) for i in range(parts) if docs[i * n:(i + 1) * n]]
    state = tmp / "state"
    state.mkdir(parents=True, exist_ok=True)
    ctx = GlobalContext(partitions=files, state_dir=state, phase_dir=tmp / "phase", num_cpus=num_cpus)
    step.fit(ctx)
    step.load(state)
    kept, dropped = [], []
    import pyarrow.parquet as pq

    for f in files:
        k, d = step.run_batch([Document.from_row(r) for r in pq.read_table(f).to_pylist()])
        kept += k
        dropped += d
    return kept, dropped
