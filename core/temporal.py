"""One way to connect to Temporal, shared by API, worker, CLI and tests."""

from __future__ import annotations

from temporalio.client import Client

from core.codec import data_converter
from core.settings import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings.encryption_keys()),
        tls=settings.temporal_tls,
        api_key=settings.temporal_api_key or None,
    )
