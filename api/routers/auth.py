from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.login import authenticate
from core.security import create_token
from models.core import StaffPublic, StaffUser

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


@router.post("/token", response_model=Token)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, session: SessionDep, settings: SettingsDep
) -> Token:
    """401 for a wrong username or password; 429 with Retry-After after too many failures."""
    user = await authenticate(request, session, settings, form.username, form.password)
    token = create_token(settings.jwt_secret, user.id, user.role.value, settings.jwt_ttl_seconds)
    return Token(access_token=token, expires_in=settings.jwt_ttl_seconds, role=user.role.value)


@router.get("/me", response_model=StaffPublic)
async def me(user: CurrentUser) -> StaffUser:
    return user
