"""Database engines. One async engine per process; Alembic uses a sync engine on the
same URL. `DATABASE_URL` may be `sqlite:///path` or `postgresql://...`."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import sqlite_gate
from core.settings import PROJECT_ROOT

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a writer waits for SQLite's write lock (and for the gate)


def cache_default_factory_checks() -> bool:
    """pydantic (2.10 on) asks `inspect.signature` whether a field's default factory takes the
    validated data every time it calls the factory, and SQLModel builds table rows that way:
    for a builtin factory (`list`, `dict`) that is a parse of its text signature, about 150 us
    of a row's 230 us (an import builds tens of thousands). A factory's signature never
    changes, so the answer is cached per factory, once per process (here, where every process
    that builds rows gets its engine). Returns whether the cache is in place; a pydantic
    without that check is left as it is."""
    from pydantic._internal import _fields

    check: Callable[[Any], bool] | None = getattr(_fields, "takes_validated_data_argument", None)
    if check is None or hasattr(check, "cache_info"):
        return check is not None
    cached = functools.lru_cache(maxsize=1024)(check)

    def takes_validated_data_argument(factory: Any) -> bool:
        try:
            return cached(factory)
        except TypeError:  # an unhashable factory: asked each time, as before
            return check(factory)

    takes_validated_data_argument.cache_info = cached.cache_info  # type: ignore[attr-defined]
    _fields.takes_validated_data_argument = takes_validated_data_argument  # type: ignore[assignment]
    return True


cache_default_factory_checks()


def async_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and "+aiosqlite" not in url:
        return url.replace("sqlite://", "sqlite+aiosqlite://", 1)
    return url


def sync_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url.replace("sqlite+aiosqlite://", "sqlite://", 1)


def private_sqlite_file(url: str) -> None:
    """The SQLite file holds patient data: create it (and a missing folder) for the owner only,
    0600 / 0700, before SQLite opens it; its -wal/-shm files inherit the file's mode. An
    existing file readable by others is tightened."""
    path = url.split(":///", 1)[1] if url.startswith("sqlite") and ":///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return
    p = Path(path)
    if not p.parent.exists():
        p.parent.mkdir(parents=True, mode=0o700)
    # O_EXCL: never open (and close) a descriptor on an existing database. Closing any
    # descriptor of a file drops every POSIX lock this process holds on it, including the
    # locks of SQLite connections already open here: that corrupts them (disk I/O error).
    try:
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for f in (p, Path(f"{p}-wal"), Path(f"{p}-shm"), Path(f"{p}-journal")):
        if f.exists() and f.stat().st_mode & 0o077:
            f.chmod(0o600)


def make_engine(url: str, *, sqlite_busy_timeout: float = SQLITE_BUSY_TIMEOUT) -> AsyncEngine:
    """The process's engine. On SQLite its connections are `core.sqlite_gate`'s: one trip to
    the driver's thread per statement, and the process's writers take turns on a gate rather
    than in SQLite's sleeping busy handler (both bounded by `sqlite_busy_timeout` seconds)."""
    url = async_url(url)
    if url.startswith("sqlite"):
        private_sqlite_file(url)
        args, params = create_async_engine(url).dialect.create_connect_args(make_url(url))
        connect = partial(sqlite_gate.connect, str(args[0]), busy_timeout=sqlite_busy_timeout, **params)
        engine = create_async_engine(url, async_creator=connect)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={sqlite_busy_timeout * 1000:.0f}")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


T = TypeVar("T", bound=SQLModel)


async def insert_once(session: AsyncSession, row: T, key: Any, value: Any) -> tuple[T, bool]:
    """Insert `row` unless a row with `key == value` (a UNIQUE column) exists.

    Returns (the row now in the table, whether this call inserted it). The unique constraint
    is the arbiter: a concurrent attempt that wins the race is found and returned, so retried
    activities and redelivered webhooks have one effect.
    """
    q = select(type(row)).where(key == value)
    existing = (await session.exec(q)).first()
    if existing is not None:
        return existing, False
    session.add(row)
    try:
        await session.commit()
        return row, True
    except IntegrityError:
        await session.rollback()
        return (await session.exec(q)).one(), False


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def migrate(url: str, revision: str = "heads") -> None:
    """Apply Alembic migrations (every branch head: each journey ships its own branch)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.attributes["database_url"] = sync_url(url)
    private_sqlite_file(sync_url(url))
    command.upgrade(cfg, revision)
