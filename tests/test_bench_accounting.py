"""Issue 14: the bench's per-process accounting (CPU and memory) counts a process's descendants,
as `journeys api` with API_WORKERS > 1 runs its requests in child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.__main__ import _family, cpu_seconds, rss

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\ntime.sleep(60)\n"


def spawning(code: str) -> str:
    """Python source that starts `code` in a child process and sleeps."""
    return f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {code!r}])\ntime.sleep(60)\n"


def test_cpu_and_memory_count_the_grandchildren() -> None:
    # parent (sleeps) -> child (sleeps) -> grandchild (burns 0.4 s of CPU, then sleeps)
    parent = subprocess.Popen([sys.executable, "-c", spawning(spawning(BURN))])
    try:
        deadline = time.monotonic() + 30
        while len(_family(parent.pid)) < 3 or cpu_seconds(parent.pid) < 0.4:
            assert parent.poll() is None
            assert time.monotonic() < deadline, f"family {_family(parent.pid)}, CPU {cpu_seconds(parent.pid)}"
            time.sleep(0.1)
        family = _family(parent.pid)
        assert family[0] == parent.pid and len(family) == 3
        assert cpu_seconds(family[1]) >= 0.4  # the child's figure holds its child's
        assert _family(family[2]) == [family[2]]
        assert rss(family[0]) > rss(family[1]) > rss(family[2]) > 0
    finally:
        for p in reversed(_family(parent.pid)):
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        parent.wait()


def test_a_gone_process_counts_nothing() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert cpu_seconds(p.pid) == 0 and rss(p.pid) == 0
