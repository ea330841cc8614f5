"""Per-key token buckets: ``rate_per_minute`` sustained, ``burst`` at once; over it -> 429 + Retry-After."""

from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    def __init__(self, rate_per_minute: float, burst: int, clock=time.monotonic):
        self.rate = max(rate_per_minute, 0.0) / 60.0  # tokens per second
        self.burst = max(int(burst), 1)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # who -> (tokens, last refill)
        self._lock = threading.Lock()

    def check(self, who: str, cost: float = 1.0) -> float:
        """0.0 when allowed (a token is taken); else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(who, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[who] = (tokens - cost, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (cost - tokens) / self.rate


def retry_after_header(wait_s: float) -> str:
    """Retry-After is whole seconds (RFC 9110); never 0 for a refused request."""
    return str(max(1, math.ceil(wait_s)))
