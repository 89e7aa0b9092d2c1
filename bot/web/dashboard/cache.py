"""A short-lived in-process cache for dashboard totals, keyed by the filter that produced them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from workflow.clock import Clock

T = TypeVar("T")


class TtlCache:
    """Several screens showing the same filter cost one set of queries per `ttl`.

    Time comes from the app's clock, so tests expire entries by advancing a ManualClock.
    """

    def __init__(self, clock: Clock, ttl: timedelta, max_entries: int = 256) -> None:
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[datetime, Any]] = OrderedDict()

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """The cached value while fresh, else `compute()`'s, remembered for `ttl`."""
        now = self.clock.now()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = await compute()
        if self.ttl > timedelta(0):
            self._entries[key] = (now, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()
