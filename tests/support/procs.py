"""Real processes for fault tests: the API and the worker as `make run` starts them
(configured by environment), killed with SIGKILL and started again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from core.settings import PROJECT_ROOT, Settings


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a process of ours reads its Settings from (as in production)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "TWILIO_", "TELEGRAM_"))}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value in (None, "") or field.alias is None:
            continue
        env[field.alias] = ",".join(value) if isinstance(value, list) else str(value)
    env["LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


class Proc:
    """One of our processes (`api` or `worker`), restartable, killed with SIGKILL."""

    def __init__(self, kind: str, env: dict[str, str], log: Path) -> None:
        self.kind, self.env, self.log = kind, env, log
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        target = ["-m", "api.main"] if self.kind == "api" else [str(PROJECT_ROOT / "worker.py")]
        self.p = subprocess.Popen(
            [sys.executable, *target],
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(timeout=10)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.p is not None and self.p.poll() is None


async def wait_http(url: str, timeout: float = 60.0) -> None:
    """Until something answers HTTP at `url` (any status)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            try:
                await http.get(url)
                return
            except httpx.TransportError:
                if loop.time() > deadline:
                    raise
            await asyncio.sleep(0.2)


class SlowProxy:
    """A TCP proxy that holds every chunk a client sends for `delay` seconds before passing it
    on: puts a process's calls to a server (e.g. Temporal) in slow motion, so a kill lands
    between its database commit and its call with certainty instead of by luck."""

    def __init__(self, target: str, delay: float) -> None:
        host, port = target.rsplit(":", 1)
        self.host, self.port, self.delay = host, int(port), delay
        self.server: asyncio.Server | None = None
        self.address = ""

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, delay: float) -> None:
        """Forward r -> w, each chunk `delay` seconds late. When the sender goes away (a killed
        process), what it had sent but we had not passed on yet is dropped, as a dead
        process's unsent calls would be."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def forward() -> None:
            while True:
                due, chunk = await queue.get()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                w.write(chunk)
                await w.drain()

        sender = asyncio.create_task(forward())
        try:
            while chunk := await r.read(65536):
                queue.put_nowait((loop.time() + delay, chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            if delay:
                sender.cancel()
            else:
                while not queue.empty() and not sender.done():
                    await asyncio.sleep(0.01)
                sender.cancel()
            w.close()

    async def _serve(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection(self.host, self.port)
        except OSError:
            cw.close()
            return
        await asyncio.gather(self._pipe(cr, sw, self.delay), self._pipe(sr, cw, 0), return_exceptions=True)

    async def __aenter__(self) -> SlowProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
