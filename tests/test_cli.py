"""The `journeys` console command installed into .venv/bin."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from core.settings import PROJECT_ROOT

J = str(PROJECT_ROOT / ".venv" / "bin" / "journeys")


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATA_DIR": str(data_dir), "DATABASE_URL": ""}
    return subprocess.run([J, *args], capture_output=True, text=True, env=env, timeout=120)


def test_help_lists_the_commands(tmp_path: Path) -> None:
    out = run("--help", data_dir=tmp_path)
    assert out.returncode == 0
    for cmd in ("create-user", "migrate", "api", "worker", "health"):
        assert cmd in out.stdout


def test_create_user_then_login_works(tmp_path: Path) -> None:
    assert run("migrate", data_dir=tmp_path).returncode == 0
    ok = run("create-user", "--username", "anna", "--password", "s3cret-pass", "--role", "operator", data_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "created user 'anna' with role operator" in ok.stdout
    dup = run("create-user", "--username", "anna", "--password", "s3cret-pass", "--role", "operator", data_dir=tmp_path)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = run("create-user", "--username", "bob", "--password", "s3cret-pass", "--role", "janitor", data_dir=tmp_path)
    assert bad.returncode == 2 and "unknown role" in bad.stderr
    short = run("create-user", "--username", "bob", "--password", "short", "--role", "doctor", data_dir=tmp_path)
    assert short.returncode == 2

    import asyncio

    from sqlmodel import select

    from core.db import make_engine, session_factory
    from core.security import verify_password
    from models.core import StaffUser

    async def check() -> None:
        engine = make_engine(f"sqlite:///{tmp_path / 'journeys.db'}")
        async with session_factory(engine)() as s:
            user = (await s.exec(select(StaffUser).where(StaffUser.username == "anna"))).one()
        await engine.dispose()
        assert user.role == "operator"
        assert user.password_hash.startswith("$argon2id$")
        assert verify_password("s3cret-pass", user.password_hash)
        assert not verify_password("wrong", user.password_hash)

    asyncio.run(check())


def test_health_names_what_is_missing(tmp_path: Path) -> None:
    env_port = "127.0.0.1:1"  # nothing listens there
    out = subprocess.run(
        [J, "health"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DATA_DIR": str(tmp_path), "DATABASE_URL": "", "TEMPORAL_ADDRESS": env_port},
    )
    assert out.returncode == 1
    assert "temporal not connected" in out.stderr


def test_create_user_with_a_clinic(tmp_path: Path) -> None:
    import asyncio

    from core.db import make_engine, migrate, session_factory
    from core.settings import Settings
    from models.core import Clinic, StaffUser

    s = Settings(DATA_DIR=str(tmp_path), DATABASE_URL="")
    migrate(s.database_url)

    async def clinic() -> str:
        engine = make_engine(s.database_url)
        async with session_factory(engine)() as db:
            c = Clinic(name="Podil", address="Kyiv", phone="+380441234567", timezone="Europe/Kyiv", policy={})
            db.add(c)
            await db.commit()
            cid = c.id
        await engine.dispose()
        return cid

    cid = asyncio.run(clinic())
    args = ("--password", "front-desk-pass", "--role", "front_desk")
    no_clinic = run("create-user", "--username", "olga", *args, data_dir=tmp_path)
    assert no_clinic.returncode != 0 and "clinic" in no_clinic.stderr
    wrong = run("create-user", "--username", "olga", *args, "--clinic", "nope", data_dir=tmp_path)
    assert wrong.returncode != 0 and "nope" in wrong.stderr
    ok = run("create-user", "--username", "olga", *args, "--clinic", cid, data_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr

    async def stored() -> StaffUser | None:
        from sqlmodel import select

        engine = make_engine(s.database_url)
        async with session_factory(engine)() as db:
            u = (await db.exec(select(StaffUser).where(StaffUser.username == "olga"))).first()
        await engine.dispose()
        return u

    user = asyncio.run(stored())
    assert user is not None and user.clinic_id == cid
    ops = run("create-user", "--username", "net", "--password", "ops-password", "--role", "ops", data_dir=tmp_path)
    assert ops.returncode == 0 and "whole network" in ops.stdout
