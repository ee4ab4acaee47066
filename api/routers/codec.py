"""Remote codec for the Temporal UI and CLI: ops read decrypted payloads, nobody else.

Protocol (Temporal's remote codec): POST {endpoint}/encode|decode with
`{"payloads": [{"metadata": {k: b64}, "data": b64}]}` and the same shape back.
Access: a staff JWT with role ops/admin, or the CODEC_SECRET (X-Codec-Secret header, or the
`/codec/k/{secret}` prefix for UIs that cannot send headers, as the dev server's UI).
"""

from __future__ import annotations

from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, HTTPException, Request, status
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import SessionDep, SettingsDep, oauth2
from core.codec import EncryptionCodec, UnknownKeyError
from core.security import decode_token, same_secret
from models.core import Role, StaffUser

router = APIRouter(prefix="/codec", tags=["codec"])


async def _authorise(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2)],
    secret: str | None = None,
) -> None:
    offered = secret or request.headers.get("x-codec-secret") or token
    if same_secret(offered, settings.codec_secret):
        return
    if token:
        try:
            claims = decode_token(settings.jwt_secret, token)
        except jwt.PyJWTError:
            claims = None
        if claims:
            user = await session.get(StaffUser, claims["sub"])
            if user and user.active and user.role in (Role.ops, Role.admin):
                return
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only ops or admin may read payloads")
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "codec access needs an ops/admin token or the codec secret")


def _codec(request: Request) -> EncryptionCodec:
    return request.app.state.codec


async def _run(request: Request, encode: bool) -> dict[str, Any]:
    try:
        body = await request.body()
        payloads = json_format.Parse(body, Payloads())
    except Exception:  # noqa: BLE001 - any parse problem is the caller's
        raise HTTPException(400, 'body must be {"payloads": [...]} in Temporal\'s JSON form') from None
    codec = _codec(request)
    try:
        items: list[Payload] = (
            (await codec.encode(payloads.payloads)) if encode else (await codec.decode(payloads.payloads))
        )
    except UnknownKeyError as e:
        raise HTTPException(422, str(e)) from None
    except Exception:  # noqa: BLE001 - a tampered payload
        raise HTTPException(422, "payload could not be decrypted") from None
    return json_format.MessageToDict(Payloads(payloads=items))


@router.post("/encode", dependencies=[Depends(_authorise)])
async def encode(request: Request) -> dict[str, Any]:
    return await _run(request, encode=True)


@router.post("/decode", dependencies=[Depends(_authorise)])
async def decode(request: Request) -> dict[str, Any]:
    return await _run(request, encode=False)


@router.post("/k/{secret}/encode", dependencies=[Depends(_authorise)], include_in_schema=False)
async def encode_keyed(request: Request) -> dict[str, Any]:
    return await _run(request, encode=True)


@router.post("/k/{secret}/decode", dependencies=[Depends(_authorise)], include_in_schema=False)
async def decode_keyed(request: Request) -> dict[str, Any]:
    return await _run(request, encode=False)
