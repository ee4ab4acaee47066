"""AES-GCM payload codec shared by client, worker and the UI codec endpoint.

Every payload that enters Temporal history (workflow inputs, activity results, signals,
queries, failure messages) is encrypted with the first configured key; the key id travels
in the payload metadata so rotated-out keys still decrypt old histories.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from core.converter import JourneyPayloadConverter

ENCODING = b"binary/encrypted"
_NONCE = 12


class UnknownKeyError(ValueError):
    pass


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._encrypt_id = keys[0][0]
        self._ciphers = {kid: AESGCM(key) for kid, key in keys}

    @property
    def key_id(self) -> str:
        return self._encrypt_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    def encode_one(self, p: Payload) -> Payload:
        nonce = os.urandom(_NONCE)
        kid = self._encrypt_id.encode()
        data = nonce + self._ciphers[self._encrypt_id].encrypt(nonce, p.SerializeToString(), kid)
        return Payload(metadata={"encoding": ENCODING, "encryption-key-id": kid}, data=data)

    def decode_one(self, p: Payload) -> Payload:
        if p.metadata.get("encoding", b"") != ENCODING:
            return p  # not ours (e.g. written before encryption was on)
        kid = p.metadata.get("encryption-key-id", b"").decode()
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise UnknownKeyError(f"payload encrypted with unknown key id {kid!r}")
        plain = cipher.decrypt(p.data[:_NONCE], p.data[_NONCE:], kid.encode())
        out = Payload()
        out.ParseFromString(plain)
        return out


def data_converter(keys: Iterable[tuple[str, bytes]]) -> DataConverter:
    """The one converter for clients and workers: encrypted payloads, failure messages/stack
    traces moved into an encoded attribute so they are encrypted too, and dataclasses decoded
    with their field types resolved once per class (core/converter.py)."""
    return dataclasses.replace(
        DataConverter.default,
        payload_converter_class=JourneyPayloadConverter,
        payload_codec=EncryptionCodec(list(keys)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
