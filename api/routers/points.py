"""Bonus points (SPEC §3.11): a patient's ledger and balance. Staff add or take points with a
reason; treatment plans spend them (api/routers/treatment_plans.py) and a cancelled plan
gives them back. A balance never goes below zero: 409 naming the balance."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, status
from sqlalchemy.exc import IntegrityError

from api import policy as access
from api.deps import MAX_OFFSET, SessionDep
from models import points
from models.core import StaffUser

# Namespace for entry ids derived from an Idempotency-Key (per staff user).
POINTS_KEYS = uuid.UUID("0c3e7f52-94b1-4c55-8a0e-5d1f62b7e9a4")

router = APIRouter(prefix="/v1/patients", tags=["bonus points"])

Adjuster = Annotated[StaffUser, access.may("points", "adjust")]
Reader = Annotated[StaffUser, access.may("points", "read")]


def _out(e: points.PointsEntry) -> dict[str, Any]:
    return points.PointsEntryOut.model_validate(e, from_attributes=True).model_dump(mode="json")


@router.post("/{patient_id}/points", status_code=status.HTTP_201_CREATED)
async def add_points(
    patient_id: str,
    body: points.PointsIn,
    session: SessionDep,
    user: Adjuster,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> dict[str, Any]:
    """Add (delta > 0) or take (delta < 0) points. The same `Idempotency-Key` again returns
    the same entry and moves the balance once."""
    if await access.patient_visible(session, user, patient_id) is None:
        raise access.not_found("patient", patient_id)
    if body.delta == 0:
        raise HTTPException(
            422, detail=[{"loc": ["body", "delta"], "type": "value_error", "msg": "delta must not be 0"}]
        )
    entry_id = uuid.uuid5(POINTS_KEYS, f"{user.id}:{idempotency_key}").hex if idempotency_key else None

    async def _replay() -> dict[str, Any] | None:
        if entry_id is None or (old := await session.get(points.PointsEntry, entry_id)) is None:
            return None
        if (old.patient_id, old.delta, old.reason) != (patient_id, body.delta, body.reason):
            raise HTTPException(409, "this Idempotency-Key was used for a different points entry")
        return {**_out(old), "balance": await points.balance(session, patient_id)}

    if (done := await _replay()) is not None:
        return done
    try:
        entry = await points.apply(
            session,
            patient_id,
            body.delta,
            kind=points.MANUAL,
            reason=body.reason,
            staff_user_id=user.id,
            entry_id=entry_id,
        )
        await session.commit()
    except points.NotEnoughPoints as e:
        await session.rollback()
        raise HTTPException(409, str(e)) from None
    except IntegrityError:  # the same key, a moment ago
        await session.rollback()
        if (done := await _replay()) is not None:
            return done
        raise
    return {**_out(entry), "balance": entry.balance_after}


@router.get("/{patient_id}/points")
async def list_points(
    patient_id: str,
    session: SessionDep,
    user: Reader,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    """The balance and the ledger, newest first."""
    if await access.patient_visible(session, user, patient_id) is None:
        raise access.not_found("patient", patient_id)
    rows = await points.entries(session, patient_id, limit, offset)
    return {
        "patient_id": patient_id,
        "balance": await points.balance(session, patient_id),
        "entries": [_out(e) for e in rows],
        "limit": limit,
        "offset": offset,
    }
