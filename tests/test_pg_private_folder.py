"""`make test` from a checkout in a private (0700) folder, e.g. `mktemp -d` or a home folder:
PostgreSQL runs as `postgres`, which cannot enter it, so the throwaway cluster lives where it
can (still throwaway, loopback only) and is removed on stop."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from core.settings import PROJECT_ROOT


@pytest.mark.skipif(shutil.which("runuser") is None, reason="needs runuser (Debian)")
def test_pg_test_script_works_from_a_0700_folder(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    checkout = private / "c"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy2(PROJECT_ROOT / "scripts" / "pg-test.sh", checkout / "scripts" / "pg-test.sh")
    script = str(checkout / "scripts" / "pg-test.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGTEST")}
    try:
        out = subprocess.run([script, "start"], cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        url = out.stdout.strip().splitlines()[-1]
        assert url.startswith("postgresql://journeys@127.0.0.1:")
        with psycopg.connect(url, connect_timeout=10) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            listen = conn.execute("show listen_addresses").fetchone()
            assert listen == ("127.0.0.1",)
        where = checkout / ".data" / "pgtest.where"
        cluster = Path(where.read_text().strip()) if where.exists() else checkout / ".data" / "pgtest"
        assert (cluster / "PG_VERSION").exists()
    finally:
        subprocess.run([script, "stop"], cwd=checkout, env=env, capture_output=True, timeout=120)
    if cluster != checkout / ".data" / "pgtest":
        assert not cluster.exists(), "the throwaway cluster outside the checkout is removed on stop"
