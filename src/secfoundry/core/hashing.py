"""sha256 of files: streamed in 1 MiB blocks, memoised on (path, size, mtime).

Used for pinned downloads (``core.download``), benchmark files (``eval.data``), model weights
(``models``) and the KB's "unchanged source" check (``kb.sync``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

_BLOCK = 1 << 20
_MEMO: dict[tuple[str, int, int], str] = {}


def update_from_file(h: Any, path: Path | str) -> None:
    """Feed the bytes of ``path`` to the hash object ``h`` without reading it whole."""
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file; recomputed only when its size or modification time changes."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MEMO:
        h = hashlib.sha256()
        update_from_file(h, p)
        _MEMO[key] = h.hexdigest()
    return _MEMO[key]
