"""Remote codec for the Temporal UI and CLI: ops read decrypted payloads, nobody else.

Protocol (Temporal's remote codec): POST {endpoint}/encode|decode with
`{"payloads": [{"metadata": {k: b64}, "data": b64}]}` and the same shape back.

Who may call it — a staff identity whose role may `decode` (policy: ops, admin), given as
* the codec cookie, set by signing in at GET/POST /codec/login in the browser; the Temporal UI
  sends it when its codec setting "Include cross-origin credentials" is on
  (`TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true` for the UI server image);
* `Authorization: Bearer <staff token>` (the UI's "Pass the user access token", or the CLI's
  `--codec-auth`);
* or, for the `temporal` CLI and scripts only, the CODEC_SECRET in the `X-Codec-Secret` header
  (`--codec-header "X-Codec-Secret=…"`). The secret never travels in a URL: the UI publishes
  its codec endpoint to anyone who can open it (`GET /api/v1/settings`).
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from api import policy
from api.deps import SessionDep, SettingsDep, oauth2, staff_from_token
from api.login import authenticate
from core.codec import EncryptionCodec, UnknownKeyError
from core.security import create_token, same_secret

router = APIRouter(prefix="/codec", tags=["codec"])
COOKIE = "journeys_codec"


async def _authorise(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2)],
) -> None:
    secret = request.headers.get("x-codec-secret") or token
    if same_secret(secret, settings.codec_secret):
        return
    staff_token = token or request.cookies.get(COOKIE)
    if not staff_token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "codec access needs an ops/admin login (sign in at /codec/login, or send a bearer token)",
        )
    user = await staff_from_token(session, settings, staff_token)
    if not policy.can(user, "codec", "decode"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only ops or admin may read payloads")


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


# ---------------------------------------------------------------- browser sign-in for the UI
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>patient-journeys: payload access</title></head>
<body style="font-family:sans-serif;max-width:36em;margin:3em auto">
<h1>Read payloads in the Temporal UI</h1>{message}
<form method="post" action="login">
<p><label>Username <input name="username" autocomplete="username" required></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button type="submit">Sign in</button></p></form>
<p>For ops and admin. Then, in the Temporal UI's codec settings, keep this API's
<code>/codec</code> endpoint and turn on <em>Include cross-origin credentials</em>.</p>
</body></html>"""


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page() -> HTMLResponse:
    return HTMLResponse(_PAGE.format(message=""))


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
async def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=200)],
) -> HTMLResponse:
    """Sets an HttpOnly, SameSite=Strict cookie scoped to /codec holding a staff token (it ends
    with the token, and when the user is deactivated)."""
    user = await authenticate(request, session, settings, username, password)
    if not policy.can(user, "codec", "decode"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only ops or admin may read payloads")
    token = create_token(settings.jwt_secret, user.id, user.role.value, settings.jwt_ttl_seconds)
    secure = request.url.scheme == "https" or settings.public_base_url.startswith("https://")
    page = HTMLResponse(_PAGE.format(message=f"<p><strong>Signed in as {html.escape(user.username)}.</strong></p>"))
    page.set_cookie(
        COOKIE,
        token,
        max_age=settings.jwt_ttl_seconds,
        path="/codec",
        httponly=True,
        # Over https the UI may live on another site (e.g. tunnelled to localhost): SameSite=None
        # is then needed, and CORS (CORS_ORIGINS) still decides who may read an answer.
        samesite="none" if secure else "strict",
        secure=secure,
    )
    return page


@router.post("/logout", include_in_schema=False)
async def logout() -> HTMLResponse:
    page = HTMLResponse(_PAGE.format(message="<p>Signed out.</p>"))
    page.delete_cookie(COOKIE, path="/codec")
    return page
