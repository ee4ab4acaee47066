"""Property-based requests against the live API's own OpenAPI schema (schemathesis): no
request a client can make may end in a 5xx. A small example count keeps it inside `make
test`; the seed is fixed so a failure reproduces (`SCHEMATHESIS_SEED` overrides it)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from models.core import Role
from tests.support.api import Api

EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "8")
SEED = os.environ.get("SCHEMATHESIS_SEED", "16")


async def test_no_request_ends_in_a_server_error(api_url: str, api: Api, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("schemathesis")
    # A live API inside this event loop: run the CLI without blocking it.
    proc = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{api_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--phases",
        "examples,coverage,fuzzing",
        "--generation-database",
        "none",
        "--workers",
        "2",
        "--request-timeout",
        "60",
        "--no-color",
        "-H",
        f"Authorization: Bearer {api.tokens[Role.admin]}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    (tmp_path / "schemathesis.log").write_text(text)
    assert proc.returncode == 0, text[-20000:]
