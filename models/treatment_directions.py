"""Moved to the contracts package (#15): import from contracts.treatment_directions, contracts.treatment_plan instead.
Kept importable only while branches opened before the move land; to be removed."""

from contracts.treatment_directions import *  # noqa: F401,F403
from contracts.treatment_plan import *  # noqa: F401,F403
