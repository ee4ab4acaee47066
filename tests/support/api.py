"""The live API as a test drives it: `api.as_(Role.operator).post(...)` logs in as a role.
(The `api` fixture in tests/conftest.py builds one; tests import the type from here.)"""

from __future__ import annotations

from typing import Any

import httpx

from core.settings import PROJECT_ROOT
from models.core import Role

TEST_SERVER_BIN = PROJECT_ROOT / ".tools" / "bin" / "temporal-test-server"


class Api:
    """An httpx client against the live API that logs in as a role: `api.as_(Role.operator)`."""

    def __init__(self, http: httpx.AsyncClient, tokens: dict[Role, str]) -> None:
        self.http = http
        self.tokens = tokens

    def headers(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def call(self, role: Role | None, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {**(self.headers(role) if role else {}), **kw.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kw)

    def as_(self, role: Role) -> _RoleClient:
        return _RoleClient(self, role)


class _RoleClient:
    def __init__(self, api: Api, role: Role) -> None:
        self.api, self.role = api, role

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.api.call(self.role, "GET", url, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.api.call(self.role, "POST", url, **kw)

    async def patch(self, url: str, **kw: Any) -> httpx.Response:
        return await self.api.call(self.role, "PATCH", url, **kw)

    async def put(self, url: str, **kw: Any) -> httpx.Response:
        return await self.api.call(self.role, "PUT", url, **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.api.call(self.role, "DELETE", url, **kw)
