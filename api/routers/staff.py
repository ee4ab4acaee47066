"""Staff accounts, for admin: create, list, change role or clinic, deactivate.

Deactivating a user (`"active": false`) revokes every token they hold at once; a later
reactivation does not bring those tokens back (they must log in again).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from api import policy
from api.deps import SessionDep
from api.errors import invalid_field
from core.security import hash_password
from models.core import Clinic, Role, StaffPublic, StaffUser

router = APIRouter(prefix="/v1/staff", tags=["staff"])
Admin = Annotated[StaffUser, policy.may("staff", "manage")]


class StaffCreate(BaseModel):
    username: str = Field(min_length=2, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=200)
    role: Role
    clinic_id: str | None = Field(default=None, max_length=32)
    full_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)


class StaffUpdate(BaseModel):
    role: Role | None = None
    clinic_id: str | None = Field(default=None, max_length=32)
    full_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=200)


async def _check_assignment(session: SessionDep, role: Role, clinic_id: str | None) -> None:
    if clinic_id is not None and await session.get(Clinic, clinic_id) is None:
        raise invalid_field("clinic_id", f"clinic_id {clinic_id!r} does not exist")
    if problem := policy.assignment_problem(role, clinic_id):
        raise invalid_field("clinic_id", problem)


@router.post("", response_model=StaffPublic, status_code=status.HTTP_201_CREATED)
async def create_staff(body: StaffCreate, session: SessionDep, _: Admin) -> StaffUser:
    await _check_assignment(session, body.role, body.clinic_id)
    if (await session.exec(select(StaffUser).where(StaffUser.username == body.username))).first():
        raise HTTPException(409, f"username {body.username!r} is taken")
    user = StaffUser(**body.model_dump(exclude={"password"}), password_hash=hash_password(body.password))
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(409, f"username {body.username!r} is taken") from None
    return user


@router.get("", response_model=list[StaffPublic])
async def list_staff(
    session: SessionDep,
    _: Admin,
    role: Role | None = None,
    clinic_id: str | None = None,
    active: bool | None = None,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> list[StaffUser]:
    q = select(StaffUser)
    if role is not None:
        q = q.where(StaffUser.role == role)
    if clinic_id is not None:
        q = q.where(StaffUser.clinic_id == clinic_id)
    if active is not None:
        q = q.where(StaffUser.active == active)
    q = q.order_by(col(StaffUser.username)).offset(offset).limit(limit)
    return list((await session.exec(q)).all())


@router.get("/{staff_id}", response_model=StaffPublic)
async def get_staff(staff_id: str, session: SessionDep, _: Admin) -> StaffUser:
    return await _get(session, staff_id)


@router.patch("/{staff_id}", response_model=StaffPublic)
async def update_staff(staff_id: str, body: StaffUpdate, session: SessionDep, admin: Admin) -> StaffUser:
    user = await _get(session, staff_id)
    changes = body.model_dump(exclude_unset=True)
    for k in ("role", "active", "password"):
        if k in changes and changes[k] is None:
            raise invalid_field(k, f"{k} cannot be null")
    role = changes.get("role", user.role)
    clinic_id = changes["clinic_id"] if "clinic_id" in changes else user.clinic_id
    await _check_assignment(session, role, clinic_id)
    if user.id == admin.id and (changes.get("active") is False or role is not Role.admin):
        raise HTTPException(409, "you cannot deactivate or demote yourself; ask another admin")
    if "password" in changes:
        user.password_hash = hash_password(changes.pop("password"))
        user.tokens_valid_after = datetime.now(UTC)  # a reset password ends the old sessions
    if changes.get("active") is False and user.active:
        user.tokens_valid_after = datetime.now(UTC)  # every token issued so far stops working
    for k, v in changes.items():
        setattr(user, k, v)
    user.role, user.clinic_id = role, clinic_id
    session.add(user)
    await session.commit()
    await session.refresh(user)
    return user


async def _get(session: SessionDep, staff_id: str) -> StaffUser:
    user = await session.get(StaffUser, staff_id)
    if user is None:
        raise HTTPException(404, f"staff user {staff_id} not found")
    return user
