"""Time spent in CPython's cycle collector while a timer is `on` (gc.callbacks), with the
collections by generation: `bench.booking_cost` per booking, `bench.counters` per journey step."""

from __future__ import annotations

import collections
import gc
import time


class GcTimer:
    """Time spent in the garbage collector (all generations) while `on`."""

    def __init__(self) -> None:
        self.on = False
        self.seconds = 0.0
        self.collections: collections.Counter[int] = collections.Counter()
        self._t0 = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict[str, int]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._t0 = time.process_time()
        else:
            self.seconds += time.process_time() - self._t0
            self.collections[info["generation"]] += 1
