"""Moved to the contracts package (#15): import from contracts.appointment instead.
Kept importable only while branches opened before the move land; to be removed."""

from contracts.appointment import *  # noqa: F401,F403
from contracts.appointment import AppointmentSnapshot as AppointmentView  # noqa: E402,F401 - the old name
