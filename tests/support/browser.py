"""A real headless browser for the patient-page tests: Debian's `chromium` driven by its
`chromedriver` over the W3C WebDriver HTTP API (plain httpx, no extra client library).
scripts/test.sh installs both packages when they are missing."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.live import free_port

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise RuntimeError("chromium and chromedriver are missing: run scripts/test.sh (it installs them with apt)")
    return browser, driver


class Browser:
    def __init__(self, http: httpx.AsyncClient, session_id: str) -> None:
        self.http, self.sid = http, session_id

    async def _call(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        r = await self.http.request(method, f"/session/{self.sid}{path}", json=json)
        body = r.json()
        if r.status_code >= 400:
            raise AssertionError(f"webdriver {method} {path}: {body.get('value', body)}")
        return body.get("value")

    async def get(self, url: str) -> None:
        await self._call("POST", "/url", {"url": url})

    async def url(self) -> str:
        return str(await self._call("GET", "/url"))

    async def source(self) -> str:
        return str(await self._call("GET", "/source"))

    async def find(self, css: str) -> str:
        value = await self._call("POST", "/element", {"using": "css selector", "value": css})
        return str(value[ELEMENT])

    async def exists(self, css: str) -> bool:
        found = await self._call("POST", "/elements", {"using": "css selector", "value": css})
        return bool(found)

    async def text(self, css: str) -> str:
        return str(await self._call("GET", f"/element/{await self.find(css)}/text"))

    async def attr(self, css: str, name: str) -> str | None:
        value = await self._call("GET", f"/element/{await self.find(css)}/attribute/{name}")
        return None if value is None else str(value)

    async def click(self, css: str) -> None:
        await self._call("POST", f"/element/{await self.find(css)}/click", {})

    async def type(self, css: str, text: str) -> None:
        await self._call("POST", f"/element/{await self.find(css)}/value", {"text": text})

    async def screenshot(self, path: Path) -> None:
        png = base64.b64decode(await self._call("GET", "/screenshot"))
        await asyncio.to_thread(path.write_bytes, png)


@asynccontextmanager
async def chromium(javascript: bool = False, width: int = 412, height: int = 915) -> AsyncIterator[Browser]:
    """A phone-sized headless Chromium; JavaScript off by default (the pages must not need it)."""
    browser_bin, driver_bin = chromium_paths()
    port = free_port()
    proc = subprocess.Popen(
        [driver_bin, f"--port={port}", "--allowed-ips=127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for _ in range(300):  # up to ~30 s on a loaded machine
                try:
                    if (await http.get("/status")).json()["value"]["ready"]:
                        break
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                await asyncio.sleep(0.1)
            options: dict[str, Any] = {
                "binary": browser_bin,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    f"--window-size={width},{height}",
                ],
            }
            if not javascript:
                options["prefs"] = {"profile.managed_default_content_settings.javascript": 2}
            r = await http.post(
                "/session",
                # implicit: element lookups wait for the element (a form post's next page may
                # still be loading when the click returns), W3C's own mechanism, no sleeps.
                json={
                    "capabilities": {
                        "alwaysMatch": {
                            "browserName": "chrome",
                            "goog:chromeOptions": options,
                            "timeouts": {"implicit": 15000},
                        }
                    }
                },
            )
            r.raise_for_status()
            sid = r.json()["value"]["sessionId"]
            try:
                yield Browser(http, sid)
            finally:
                await http.delete(f"/session/{sid}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
