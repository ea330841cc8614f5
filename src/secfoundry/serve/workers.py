"""Worker threads that own their knowledge-base connection.

The KB's SQLite connection belongs to the thread that opened it, so blocking work (KB
lookups, app calls) runs on a small pool whose threads each hold a ``Context``: one
``KnowledgeBase`` per thread (sharing one query embedder across threads), plus whatever
engines the apps build once and reuse (``ctx.get(name, factory)``). Everything loads lazily on
first use; ``Loaded`` records what was loaded and how long it took (the readiness endpoint).
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")


SETTLE_AFTER_S = 0.2  # loads quicker than this are small (a cache, a connection): no collection for them


def settle() -> None:
    """After a lazy load (a KB connection, an index, a fitted model: up to millions of long-lived
    objects), collect once and move everything alive to the GC's permanent generation
    (``gc.freeze``): later full collections then skip the loaded models instead of walking them
    all, a 100+ ms pause that otherwise lands on whichever request triggers it."""
    gc.collect()
    gc.freeze()


class Loaded:
    """What the process has loaded so far: name -> {seconds, at, detail}."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def note(self, name: str, seconds: float, detail: str = "") -> None:
        with self.lock:
            if name not in self.items:
                self.items[name] = {"seconds": round(seconds, 3), "at": time.time(), "detail": detail}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {k: dict(v) for k, v in self.items.items()}


class Shared:
    """Objects every thread may share (read-only after load): the query embedder, the LLM."""

    def __init__(self, kb_path: Path | None, model: str | None, loaded: Loaded):
        self.kb_path = kb_path
        self.model = model
        self.loaded = loaded
        self.lock = threading.Lock()
        self.objects: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}

    def get(self, name: str, factory: Callable[[], T]) -> T:
        """Build ``name`` once; other threads asking for it wait, threads asking for others don't."""
        obj = self.objects.get(name)
        if obj is None:
            with self.lock:
                lock = self._locks.setdefault(name, threading.Lock())
            with lock:
                obj = self.objects.get(name)
                if obj is None:
                    t0 = time.perf_counter()
                    obj = factory()
                    self.objects[name] = obj
                    took = time.perf_counter() - t0
                    self.loaded.note(name, took)
                    if took > SETTLE_AFTER_S:
                        settle()
        return obj


class Context:
    """Per-thread state: this thread's KB connection and app engines."""

    def __init__(self, shared: Shared):
        self.shared = shared
        self._kb: Any = None
        self.cache: dict[str, Any] = {}

    @property
    def kb(self) -> Any:
        if self._kb is None:
            from secfoundry.kb import KnowledgeBase

            t0 = time.perf_counter()
            first = self.shared.objects.get("kb.embedder")
            self._kb = KnowledgeBase.open(self.shared.kb_path, embedder=first)
            self.shared.loaded.note("kb", time.perf_counter() - t0, str(self._kb.paths.db))
        return self._kb

    def kb_warm_searcher(self) -> Any:
        """The KB's searcher, with the query embedder shared across threads."""
        kb = self.kb
        if kb._searcher is None and "kb.embedder" not in self.shared.objects:
            self.shared.get("kb.embedder", lambda: kb.embedder)  # loads MiniLM once
        elif kb._embedder is None and "kb.embedder" in self.shared.objects:
            kb._embedder = self.shared.objects["kb.embedder"]
        t0 = time.perf_counter()
        fresh = kb._searcher is None
        s = kb.searcher
        self.shared.loaded.note("kb.search_index", time.perf_counter() - t0)
        if fresh:
            settle()
        return s

    def get(self, name: str, factory: Callable[["Context"], T]) -> T:
        """A per-thread object built once by ``factory(ctx)`` (an app engine)."""
        obj = self.cache.get(name)
        if obj is None:
            t0 = time.perf_counter()
            obj = factory(self)
            self.cache[name] = obj
            took = time.perf_counter() - t0
            self.shared.loaded.note(name, took)
            if took > SETTLE_AFTER_S:
                settle()
        return obj

    def close(self) -> None:
        if self._kb is not None:
            self._kb.close()
            self._kb = None


class WorkerPool:
    def __init__(self, name: str, threads: int, shared: Shared):
        self.name = name
        self.shared = shared
        self._local = threading.local()
        self._contexts: list[Context] = []
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=max(threads, 1), thread_name_prefix=f"sf-{name}")

    def _context(self) -> Context:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = Context(self.shared)
            self._local.ctx = ctx
            with self._lock:
                self._contexts.append(ctx)
        return ctx

    def _call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        return fn(self._context(), *args, **kw)

    def submit(self, fn: Callable[..., T], *args: Any, **kw: Any) -> "Future[T]":
        """Run ``fn(ctx, *args, **kw)`` on a worker thread (for the job runner)."""
        return self.executor.submit(self._call, fn, *args, **kw)

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None, **kw: Any) -> T:
        """Await ``fn(ctx, *args, **kw)``; ``asyncio.TimeoutError`` after ``timeout`` seconds (the
        thread finishes its call in the background; its result is dropped)."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self.executor, partial(self._call, fn, *args, **kw))
        if timeout is None:
            return await fut
        return await asyncio.wait_for(fut, timeout)

    def shutdown(self, wait: bool = True) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=True)
        with self._lock:
            for c in self._contexts:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - a connection owned by another thread; process exit frees it
                    pass
