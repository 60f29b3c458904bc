"""Per-process caches of reopened (unpickled) tables and indexes.

A pickled :class:`lakevec.Table` or :class:`lakevec.VectorIndex` is a handle that reopens
in the receiving process; a worker (Ray, Spark, multiprocessing) receiving the same handle
for every task reopens it once. Entries are keyed by what the handle pins (URI, options,
version), belong to the process that made them (a forked child starts afresh: the parent's
objects hold its runtime's state), and the least recently used are dropped beyond a limit.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class ProcessCache:
    """A bounded LRU map ``key -> value`` valid in the process that filled it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[Hashable, tuple[int, object]] = OrderedDict()
        self._lock = threading.Lock()
        # a child forked while another thread held the lock must not inherit it held
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The cached value of ``key``, made by ``make()`` (under a lock: threads of one
        worker asking for the same key open it once) when absent or from another process."""
        pid = os.getpid()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] == pid:
                self._items.move_to_end(key)
                return hit[1]  # type: ignore[return-value]
            value = make()
            self._items[key] = (pid, value)
            self._items.move_to_end(key)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
            return value
