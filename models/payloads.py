"""Moved to the contracts package (#15): import from contracts.common instead.
Kept importable only while branches opened before the move land; to be removed."""

from contracts.common import *  # noqa: F401,F403
