"""SQLite, the zero-set-up database: a process's writers take turns on a gate instead of
sleeping in SQLite's busy handler, and a statement makes one trip to the driver's thread
(core.sqlite_gate, used by every engine core.db.make_engine opens on SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import trips
from core.db import make_engine


def _no_busy_wait(engine: AsyncEngine) -> None:
    """Connections that never wait in SQLite's busy handler: a writer that finds the write
    lock taken fails at once with `database is locked`."""

    @event.listens_for(engine.sync_engine, "connect")
    def _pragma(dbapi_conn: Any, _rec: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=0")
        cur.close()


async def _table(engine: AsyncEngine) -> None:
    async with engine.begin() as c:
        await c.execute(text("CREATE TABLE visits (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))


async def test_writers_of_one_process_take_turns_without_sqlite_busy_waits(tmp_path: Path) -> None:
    """Twenty transactions that each hold the write lock across awaits, at once, on one
    engine: with SQLite's busy handler switched off, each would fail with `database is locked`
    the moment another held the lock (the pool opens up to 15 connections); the gate queues
    them, in order, and every one commits."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    _no_busy_wait(engine)
    await _table(engine)

    async def visit(i: int) -> None:
        async with engine.begin() as c:
            await c.execute(text("INSERT INTO visits (id, n) VALUES (:i, 0)"), {"i": i})
            await asyncio.sleep(0.002)  # other writers run meanwhile
            await c.execute(text("UPDATE visits SET n = n + 1 WHERE id = :i"), {"i": i})

    try:
        await asyncio.gather(*(visit(i) for i in range(20)))
        async with engine.connect() as c:
            assert (await c.execute(text("SELECT count(*), sum(n) FROM visits"))).one() == (20, 20)
    finally:
        await engine.dispose()


async def test_readers_are_not_held_behind_a_writer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    await _table(engine)
    try:
        async with engine.begin() as w:
            await w.execute(text("INSERT INTO visits (id, n) VALUES (1, 1)"))
            # The writer's transaction is open (and holds the gate): a reader is answered at
            # once, from the last committed state.
            async with engine.connect() as r:
                got = await asyncio.wait_for(r.execute(text("SELECT count(*) FROM visits")), 5)
                assert got.scalar() == 0
    finally:
        await engine.dispose()


async def test_a_second_writer_under_an_open_write_fails_after_the_busy_timeout(tmp_path: Path) -> None:
    """Writing on a second connection while this task holds a write transaction can never
    succeed; it fails after the busy timeout with SQLite's own error, as without the gate
    (it must not hang), and both connections are usable afterwards."""
    engine = make_engine(f"sqlite:///{tmp_path / 't.db'}", sqlite_busy_timeout=0.3)
    await _table(engine)
    try:
        async with engine.begin() as first:
            await first.execute(text("INSERT INTO visits (id, n) VALUES (1, 1)"))
            with pytest.raises(OperationalError, match="database is locked"):
                async with engine.begin() as second:
                    await second.execute(text("INSERT INTO visits (id, n) VALUES (2, 1)"))
        async with engine.begin() as again:  # the first committed and handed the gate on
            await again.execute(text("INSERT INTO visits (id, n) VALUES (2, 2)"))
        async with engine.connect() as c:
            assert (await c.execute(text("SELECT id, n FROM visits ORDER BY id"))).all() == [(1, 1), (2, 2)]
    finally:
        await engine.dispose()


async def test_a_failed_or_rolled_back_write_hands_the_gate_on(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'f.db'}", sqlite_busy_timeout=2)
    await _table(engine)
    try:
        async with engine.begin() as c:
            await c.execute(text("INSERT INTO visits (id, n) VALUES (1, 1)"))
        with pytest.raises(IntegrityError):  # NOT NULL fails: the transaction is rolled back
            async with engine.begin() as c:
                await c.execute(text("INSERT INTO visits (id, n) VALUES (2, 1)"))
                await c.execute(text("INSERT INTO visits (id, n) VALUES (3, NULL)"))
        async with engine.connect() as c:
            await c.execute(text("INSERT INTO visits (id, n) VALUES (4, 1)"))
            await c.rollback()
        async with engine.begin() as c:  # within the timeout: nothing kept the gate
            await asyncio.wait_for(c.execute(text("INSERT INTO visits (id, n) VALUES (5, 1)")), 1)
        async with engine.connect() as c:
            assert (await c.execute(text("SELECT id FROM visits ORDER BY id"))).scalars().all() == [1, 5]
    finally:
        await engine.dispose()


async def test_a_statement_makes_one_trip_to_the_drivers_thread(tmp_path: Path) -> None:
    """aiosqlite's own cursor makes four (create, execute, fetch, close); each is a hand-off
    to the connection's thread and a wake-up of the event loop."""
    engine = make_engine(f"sqlite:///{tmp_path / 'o.db'}")
    await _table(engine)
    trips.install()
    try:
        async with engine.connect() as c:
            await c.execute(text("SELECT 1"))  # the connection is open and in the pool's hands
            before = trips.made()
            inserted = await c.execute(text("INSERT INTO visits (n) VALUES (7) RETURNING id, n"))
            assert inserted.one() == (1, 7)
            updated = await c.execute(text("UPDATE visits SET n = 8"))
            assert updated.rowcount == 1
            rows = await c.execute(text("SELECT id, n FROM visits"))
            assert rows.all() == [(1, 8)]
            assert trips.made() - before == 3
            await c.commit()
    finally:
        await engine.dispose()


async def test_a_read_makes_no_trip_to_end_a_transaction_it_never_opened(tmp_path: Path) -> None:
    """An ORM session that only reads: SQLAlchemy rolls back at the session's close and again
    when the pool takes the connection back; with no transaction open both are sqlite3
    no-ops, and neither may cost a hand-off to the driver's thread. With one open, the
    session's rollback still happens: an uncommitted write is rolled back and the gate handed
    on (and the pool's reset then finds nothing open)."""
    from sqlmodel.ext.asyncio.session import AsyncSession

    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}", sqlite_busy_timeout=2)
    await _table(engine)
    trips.install()
    try:
        async with engine.connect() as c:  # the pool's connection is open before counting
            await c.execute(text("SELECT 1"))
        before = trips.made()
        async with AsyncSession(engine) as s:
            assert (await s.exec(text("SELECT count(*) FROM visits"))).one() == (0,)  # type: ignore[call-overload]
            await s.commit()  # nothing open: no trip either
        assert trips.made() - before == 1  # the statement's own

        before = trips.made()
        async with AsyncSession(engine) as s:  # a write left uncommitted
            await s.exec(text("INSERT INTO visits (id, n) VALUES (1, 1)"))  # type: ignore[call-overload]
        assert trips.made() - before == 2  # the statement, the session's rollback (then nothing is open)
        async with engine.begin() as c:  # the gate was handed on, and the row is gone
            await asyncio.wait_for(c.execute(text("INSERT INTO visits (id, n) VALUES (2, 1)")), 1)
        async with engine.connect() as c:
            assert (await c.execute(text("SELECT id FROM visits"))).scalars().all() == [2]
    finally:
        await engine.dispose()
