"""Password hashing (argon2id) and staff JWTs."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps timing uniform.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
ALGORITHM = "HS256"


def same_secret(offered: str | None, expected: str | None) -> bool:
    """Constant-time comparison of a secret a client sent (header, query) with ours. Any text
    is accepted: a non-ASCII value is simply not equal (hmac.compare_digest raises on it)."""
    if not offered or not expected:
        return False
    return hmac.compare_digest(offered.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    try:
        return _hasher.verify(hashed or _DUMMY_HASH, password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


def create_token(secret: str, user_id: str, role: str, ttl_seconds: int) -> str:
    now = datetime.now(UTC)
    claims = {"sub": user_id, "role": role, "iat": now, "exp": now + timedelta(seconds=ttl_seconds)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str) -> dict:
    return jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
