"""SQLite writers of one process take turns on an asyncio lock, not in SQLite's busy handler.

SQLite has one write lock per database file. A connection that finds it taken waits in SQLite's
busy handler, which *sleeps* (1, 2, 5, 10, ... up to 100 ms) and looks again: it is not woken
when the lock is freed. With a pool of connections in one event loop (an API process under
load: a dozen bookings in flight), most writers sleep in that handler while the lock sits free,
and a busy process serves far fewer writes than SQLite can commit (py-spy on an API process
under the bookings bench: its database threads spent most of their time in `clock_nanosleep`
under `sqlite3_step`). Measured on the worker, one session on one box (absolute rates move with
the box): with the gate, 100 activities in flight drained a burst of 200 asks at ~43 sends/s;
without it, 100 in flight drained ~27/s, no better than 8.

Every aiosqlite connection an engine of ours opens is a `GatedConnection`. Its first writing
statement in a transaction waits on the process's gate for that database file (one
`asyncio.Lock` per file and event loop), and the gate is handed on the moment the transaction
ends (commit, rollback, close, or a failed statement that ended it). Writers of one process
then queue in order and are woken at once; SQLite's own lock and busy timeout still arbitrate
between processes (the API's, the worker's), and anything this gate does not recognise as a
write is still correct, only served by the busy handler as before. Reads are never gated: WAL
readers do not block a writer.

Waiting on the gate is bounded by the same busy timeout SQLite would apply, and ends with the
error SQLite would raise (`database is locked`), so code that (wrongly) writes on a second
connection while holding a write transaction fails after the timeout exactly as it did before,
rather than hanging.

Each statement also makes one trip to the connection's thread, not four: aiosqlite's own
cursor sends its creation, the statement, the fetch of its rows and its closing to the thread
one by one (four thread hand-offs and wake-ups of the event loop), and SQLAlchemy's adapter
does all four for every statement. `OneTripCursor` runs them together and hands the adapter
the rows, description, rowcount and lastrowid it reads afterwards. (No code here streams a
result with a server-side cursor; one would still be correct, with its rows read at once.)

A commit or rollback with no transaction open makes no trip at all. sqlite3 does nothing for
either then, but SQLAlchemy asks for both around every read: the session's rollback at its
close and the pool's reset when the connection goes back, two hand-offs to the thread for a
request that only read (on this box ~0.1-0.2 ms of CPU each, against ~2 µs for the read itself).
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from functools import partial
from typing import Any

import aiosqlite

# Statements that take SQLite's write lock (a leading comment or a WITH ... INSERT is not
# recognised: such a statement is still correct, it waits in the busy handler as before).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE")

_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def gate_for(database: str) -> asyncio.Lock:
    """The write gate of `database` in the running event loop (one per file, per loop)."""
    per_loop = _gates.setdefault(asyncio.get_running_loop(), {})
    lock = per_loop.get(database)
    if lock is None:
        lock = per_loop[database] = asyncio.Lock()
    return lock


def is_write(sql: object) -> bool:
    return isinstance(sql, str) and sql.lstrip()[:16].upper().startswith(_WRITES)


class OneTripCursor:
    """The cursor SQLAlchemy's aiosqlite adapter is handed: `execute` runs the statement, reads
    its rows and closes the sqlite3 cursor in one trip to the connection's thread."""

    def __init__(self, connection: GatedConnection) -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        await self._run("execute", sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneTripCursor:
        await self._run("executemany", sql, parameters)
        return self

    async def executescript(self, sql_script: str) -> OneTripCursor:
        await self._run("executescript", sql_script, None)
        return self

    async def _run(self, method: str, sql: str, parameters: Any) -> None:
        connection = self._connection._conn

        def trip() -> tuple[list[Any], Any, int, int | None]:
            cursor = connection.cursor()
            try:
                call = getattr(cursor, method)
                call(sql) if parameters is None else call(sql, parameters)
                rows = cursor.fetchall() if cursor.description else []
                return rows, cursor.description, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        rows, self.description, self.rowcount, self.lastrowid = await self._connection._trip(trip, sql)
        self._rows = deque(rows)

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = min(self.arraysize if size is None else size, len(self._rows))
        return [self._rows.popleft() for _ in range(n)]

    async def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def __aiter__(self) -> AsyncIterator[Any]:
        while self._rows:
            yield self._rows.popleft()


class _Ready:
    """`connection.cursor()`: awaitable, and an async context manager, as aiosqlite's is,
    with no trip to the thread (the sqlite3 cursor is made by each statement's own trip)."""

    def __init__(self, cursor: OneTripCursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, OneTripCursor]:
        return self.__aenter__().__await__()

    async def __aenter__(self) -> OneTripCursor:
        return self._cursor

    async def __aexit__(self, *_exc: object) -> None:
        await self._cursor.close()


class GatedConnection(aiosqlite.Connection):
    """An aiosqlite connection whose write transactions hold the process's gate of its file,
    and whose cursors make one trip to its thread per statement."""

    def __init__(self, database: str, busy_timeout: float, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._thread.daemon = True  # as SQLAlchemy's own aiosqlite connect does
        self._database = database
        self._busy_timeout = busy_timeout
        self._gate: asyncio.Lock | None = None  # set while this connection holds it
        # Trips handed to the connection's thread, and trips it has finished: each counter is
        # written by one thread only. A trip whose awaiting task was cancelled still counts
        # until the thread has run it.
        self._handed = 0
        self._finished = 0

    def cursor(self) -> _Ready:  # type: ignore[override]
        return _Ready(OneTripCursor(self))

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # aiosqlite's own calls (connect, commit, rollback, close, connection.execute...)
        return await self._trip(partial(fn, *args, **kwargs) if args or kwargs else fn, args[0] if args else None)

    async def commit(self) -> None:
        if not self._nothing_to_end():
            await super().commit()

    async def rollback(self) -> None:
        if not self._nothing_to_end():
            await super().rollback()

    def _nothing_to_end(self) -> bool:
        """Whether sqlite3's commit or rollback would be a no-op now: no transaction open, and
        no trip queued or running that could open one (nor a gate held, which a trip hands on)."""
        if self._handed != self._finished or self._gate is not None:
            return False
        try:
            return not self._conn.in_transaction
        except (ValueError, sqlite3.ProgrammingError):  # closed: aiosqlite's own call says so
            return False

    async def _hand(self, fn: Callable[[], Any]) -> Any:
        """`fn` to the connection's thread, counted."""

        def counted() -> Any:
            try:
                return fn()
            finally:
                self._finished += 1

        self._handed += 1  # (refused by a closed connection, it stays uneven: never skipped again)
        return await super()._execute(counted)

    async def _trip(self, fn: Callable[[], Any], sql: object) -> Any:
        """Run `fn` in the connection's thread; a write first takes the gate, which is handed
        on once no transaction is open."""
        if self._gate is None and is_write(sql):
            gate = gate_for(self._database)
            try:
                async with asyncio.timeout(self._busy_timeout):
                    await gate.acquire()
            except TimeoutError:
                raise sqlite3.OperationalError("database is locked") from None
            self._gate = gate
        if self._gate is None:
            return await self._hand(fn)
        conn = self._conn

        def call_and_report() -> tuple[Any, BaseException | None, bool]:
            # In the connection's thread: the call, then whether a transaction is still open.
            try:
                result, error = fn(), None
            except BaseException as e:  # noqa: BLE001 - re-raised below, in the event loop
                result, error = None, e
            try:
                open_ = conn.in_transaction
            except sqlite3.ProgrammingError:  # the call closed the connection
                open_ = False
            return result, error, open_

        result, error, open_ = await self._hand(call_and_report)
        if not open_:
            self._release()
        if error is not None:
            raise error
        return result

    def _release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None and gate.locked():
            gate.release()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._release()

    def stop(self) -> asyncio.Future[Any] | None:  # a terminated (not closed) connection
        try:
            return super().stop()
        finally:
            self._release()


async def connect(database: str, busy_timeout: float, **kwargs: Any) -> GatedConnection:
    """What `aiosqlite.connect(database, timeout=busy_timeout, **kwargs)` does, gated."""
    connector = partial(sqlite3.connect, database, timeout=busy_timeout, **kwargs)
    connection = GatedConnection(database, busy_timeout, connector)
    await connection  # starts its thread and opens the database there
    return connection
