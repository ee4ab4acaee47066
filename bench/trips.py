"""Trips to the SQLite driver's thread, counted for the whole process (the benches' tools).

Every statement, commit and rollback of a `core.sqlite_gate` connection that reaches the
driver's thread goes through `aiosqlite.Connection._execute` once: one hand-off to the thread
and one wake-up of the event loop. `install()` counts them from then on; `made()` is the count.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

_made = 0
_installed = False


def install() -> None:
    """Count every trip from now on (once per process; later calls do nothing)."""
    global _installed
    if _installed:
        return
    handed = aiosqlite.Connection._execute

    async def counted(conn: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        global _made
        _made += 1
        return await handed(conn, fn, *args, **kwargs)

    setattr(aiosqlite.Connection, "_execute", counted)  # noqa: B010 - patched for the count
    _installed = True


def made() -> int:
    """Trips made since `install()`."""
    return _made
