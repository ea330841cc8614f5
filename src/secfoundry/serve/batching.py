"""Dynamic batching for synchronous model routes (``/intel/map-cwe``, ``/intel/predict-cvss``).

Concurrent single-item requests are coalesced into one call of the engine's batch function
(``CweMapper.map_many``): the TF-IDF transform, the linear heads and the neighbour similarities
are matrix products whose cost per call is mostly fixed, so 16 items in one call cost far less
than 16 calls. No timer and no added wait: a request that finds the engine idle runs at once,
alone; requests arriving while a batch runs wait for it and then go together (at most
``max_batch``). Batch functions must treat items independently (map_many does: row-wise
products, per-item ranking), so a batched answer equals the answer alone (tested).

If a batch raises, its items are run again one by one, so one bad input fails only its own
request. Runs on the service's request worker threads (never the event loop, no global lock).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable


class Batcher:
    def __init__(self, pool: Any, fn_many: Callable[[Any, list[Any]], list[Any]], *, max_batch: int = 32,
                 lanes: int = 1):
        self.pool = pool  # a WorkerPool: run(fn, *args) -> fn(ctx, *args) on a worker thread
        self.fn_many = fn_many
        self.max_batch = max_batch
        self.lanes = lanes  # batches that may run at once
        self.pending: list[tuple[Any, asyncio.Future]] = []
        self.running = 0
        self.batches = self.items = 0  # counters for /readyz-style reporting and tests

    async def submit(self, item: Any, timeout: float | None = None) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self.pending.append((item, fut))
        if self.running < self.lanes:
            self.running += 1
            loop.create_task(self._drain())
        if timeout is None:
            return await fut
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[:self.max_batch], self.pending[self.max_batch:]
                batch = [(it, f) for it, f in batch if not f.cancelled()]
                if not batch:
                    continue
                self.batches += 1
                self.items += len(batch)
                try:
                    out = await self.pool.run(self.fn_many, [it for it, _ in batch])
                    if len(out) != len(batch):
                        raise RuntimeError(f"batch function returned {len(out)} results for {len(batch)} items")
                    for (_, f), r in zip(batch, out):
                        if not f.done():
                            f.set_result(r)
                except Exception as e:  # noqa: BLE001 - isolate the failing item(s)
                    if len(batch) == 1:
                        if not batch[0][1].done():
                            batch[0][1].set_exception(e)
                        continue
                    for it, f in batch:
                        try:
                            r = (await self.pool.run(self.fn_many, [it]))[0]
                            if not f.done():
                                f.set_result(r)
                        except Exception as e1:  # noqa: BLE001 - this item's own error, for its request
                            if not f.done():
                                f.set_exception(e1)
        finally:
            self.running -= 1
