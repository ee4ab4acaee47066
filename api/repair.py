"""No booking row without a journey.

A booking commits its row (`journey_started = false`) and then starts the journey. An API
process killed between the two leaves a row that reads `booked` and holds the doctor's slot
with nothing behind it. Every API process runs `repair_loop`: a row still unstarted after
`REPAIR_AFTER` (longer than a booking's own start call may take, see START_TIMEOUT) gets its
journey started - the same idempotent start a retry with the Idempotency-Key does - and is
marked started. A start that fails (Temporal down) is tried again on the next round.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from core import booking, waitlist
from core.logging import get_logger
from core.settings import Settings
from models.appointment import Appointment
from models.core import Clinic, utcnow

log = get_logger("api.repair")

REPAIR_AFTER = timedelta(seconds=10)
REPAIR_EVERY = 2.0  # seconds between rounds
BATCH = 100


async def repair_bookings(
    sessions: async_sessionmaker[AsyncSession],
    temporal: Client,
    settings: Settings,
    older_than: timedelta = REPAIR_AFTER,
) -> int:
    """Start the journeys of bookings left unstarted; returns how many were repaired."""
    repaired = 0
    async with sessions() as s:
        q = (
            select(Appointment)
            .where(Appointment.journey_started == False, col(Appointment.created_at) < utcnow() - older_than)  # noqa: E712
            .order_by(col(Appointment.created_at))
            .limit(BATCH)
        )
        for appt in (await s.exec(q)).all():
            clinic = await s.get(Clinic, appt.clinic_id)
            if clinic is None:
                continue
            await booking.start_journey(temporal, settings.temporal_task_queue, appt, clinic)
            await booking.mark_started(s, appt)
            repaired += 1
            log.warning("booking without a journey repaired: journey started", appointment_id=appt.id)
    return repaired


async def repair_slot_offers(
    sessions: async_sessionmaker[AsyncSession],
    temporal: Client,
    settings: Settings,
    older_than: timedelta = REPAIR_AFTER,
) -> int:
    """Start the journeys of freed-slot offers left unstarted (see core.waitlist)."""
    async with sessions() as s:
        offers = await waitlist.pending_offers(s, older_than=older_than)
        for offer in offers:
            await waitlist.start_offer(s, temporal, settings.temporal_task_queue, offer)
            log.warning("slot offer without a journey repaired: journey started", offer_id=offer.id)
    return len(offers)


async def repair_loop(state: Any) -> None:
    """Forever, every REPAIR_EVERY seconds, on the app's state (sessions, temporal, settings)."""
    while True:
        if state.temporal is not None:
            try:
                await repair_bookings(state.sessions, state.temporal, state.settings)
                await repair_slot_offers(state.sessions, state.temporal, state.settings)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - DB or Temporal away: next round
                log.info("booking repair round failed; retrying", error=type(e).__name__)
        await asyncio.sleep(REPAIR_EVERY)
