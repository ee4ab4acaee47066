"""Moved to the contracts package (#15): import from contracts.appointment, contracts.common, contracts.policy instead.
Kept importable only while branches opened before the move land; to be removed."""

from contracts.appointment import *  # noqa: F401,F403
from contracts.common import *  # noqa: F401,F403
from contracts.policy import *  # noqa: F401,F403
