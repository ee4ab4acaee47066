"""Alembic environment. Each journey keeps its own branch of migrations off `0001`;
`journeys migrate` (and `make run`) apply every head. Works on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import pkgutil

from alembic import context
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

import models
from core.db import sync_url
from core.settings import get_settings

# Import every models module so SQLModel.metadata knows all tables (for autogenerate).
for mod in pkgutil.iter_modules(models.__path__):
    importlib.import_module(f"models.{mod.name}")

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    return config.attributes.get("database_url") or sync_url(get_settings().database_url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )  # SQLite needs batch mode for ALTERs
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
