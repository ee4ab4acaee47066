from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from sqlmodel import select

from api.deps import CurrentUser, SessionDep, SettingsDep
from core.security import create_token, verify_password
from models.core import StaffPublic, StaffUser

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


@router.post("/token", response_model=Token)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep
) -> Token:
    user = (await session.exec(select(StaffUser).where(StaffUser.username == form.username))).first()
    if not verify_password(form.password, user.password_hash if user else None) or user is None or not user.active:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    token = create_token(settings.jwt_secret, user.id, user.role.value, settings.jwt_ttl_seconds)
    return Token(access_token=token, expires_in=settings.jwt_ttl_seconds, role=user.role.value)


@router.get("/me", response_model=StaffPublic)
async def me(user: CurrentUser) -> StaffUser:
    return user
