"""The worker's garbage-collector policy (WORKER_GC_THRESHOLD).

CPython's cycle collector runs its youngest generation every 700 net container allocations and
the older ones after 10 of those each; a full (oldest) collection walks every tracked object
the process holds. A journey worker allocates fast (every activation decodes payloads, builds
dataclasses and SQLAlchemy rows) while it holds a large heap that never dies: the modules, the
ORM's mappers, the sandbox's restrictions, and every journey in the sticky cache. So it paid
for many young collections and for full walks over that heap. Measured in `bench.counters`
(N=300, one process, gc.callbacks timing every collection, five runs): 1.2-1.7 ms of collector
time per day-before ask and 2.3-2.6 ms per booking notice; in the 300 asks alone one full and
nine middle collections.

`tune(threshold0)`, called once the worker is built and before it polls:
  * `gc.collect()` then `gc.freeze()`: everything alive at start-up (modules, classes, the
    ORM, the workers) moves to the permanent generation, which no collection walks again;
  * the youngest generation's threshold becomes `threshold0` (default 10,000: a young
    collection every ~10k net allocations instead of 700); the older generations keep
    Python's own thresholds relative to it.
Garbage that only a collection frees (reference cycles) lives a little longer: at most the
~10k objects allocated since the last young collection. Everything freed by reference counting
(almost all) is freed at once, as before. With the policy the same bench measured 0.14-0.23 ms
per ask and 0.55-0.72 ms per notice, and no middle or full collection in the asks.

`threshold0 = 0` leaves Python's defaults untouched (no freeze).
"""

from __future__ import annotations

import gc


def tune(threshold0: int) -> dict[str, int]:
    """Apply the policy; returns what it did (for the worker's start-up log line)."""
    if threshold0 <= 0:
        return {"gc_threshold0": gc.get_threshold()[0], "gc_frozen": gc.get_freeze_count()}
    gc.collect()
    gc.freeze()
    _, t1, t2 = gc.get_threshold()
    gc.set_threshold(threshold0, t1, t2)
    return {"gc_threshold0": threshold0, "gc_frozen": gc.get_freeze_count()}
