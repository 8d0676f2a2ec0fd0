"""Per-tenant ingestion rate limits, checked before a request is appended to the log.

A token bucket per (signal, tenant) as Mimir and Loki do it: the whole request is refused with a
429 naming the limit when it does not fit, so a client retries it later instead of losing part
of it; nothing is half-accepted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lookout.ingest.receiver import Overloaded, TooLarge


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = burst
        self.stamp = clock()

    def take(self, n: float) -> float:
        """Take ``n`` tokens; return 0 on success or the seconds until they would be there."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        if n > self.burst:
            return -1.0  # can never fit
        return (n - self.tokens) / self.rate


class TenantRateLimit:
    """``items_per_second`` per tenant for one signal (0 disables), with ``burst`` items."""

    def __init__(self, signal: str, items_per_second: float, burst: float, setting: str, unit: str) -> None:
        self.signal, self.rate, self.burst = signal, items_per_second, max(burst, items_per_second)
        self.setting, self.unit = setting, unit
        self._buckets: dict[str, TokenBucket] = {}

    def __call__(self, signal: str, tenant: str, items: int) -> None:
        if signal != self.signal or self.rate <= 0:
            return
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = TokenBucket(self.rate, self.burst)
        wait = bucket.take(items)
        if wait == 0:
            return
        if wait < 0:
            # retrying can never succeed: a 413 telling the client to split the request
            raise TooLarge(f"request of {items} {self.unit} is larger than tenant {tenant}'s burst of "
                           f"{self.burst:.0f} {self.unit} (2 x {self.setting}); send smaller requests")
        raise Overloaded(f"tenant {tenant} is over its ingestion rate limit of {self.rate:.0f} {self.unit}/s "
                         f"({self.setting})", wait, reason="rate_limited")
