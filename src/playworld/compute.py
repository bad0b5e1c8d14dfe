"""How much compute a process takes, and on which clock a time budget counts it.

    clock = budget_clock("cpu")     # time.process_time: CPU seconds of this process
"""

from __future__ import annotations

import time
from typing import Callable

from playworld.errors import PlayworldError


def budget_clock(name: str) -> Callable[[], float]:
    """The clock a time budget counts on: 'wall' (elapsed seconds) or 'cpu' (this process's CPU seconds)."""
    if name not in ("wall", "cpu"):
        raise PlayworldError(f"unknown budget clock {name!r}", "use 'wall' or 'cpu'")
    return time.process_time if name == "cpu" else time.monotonic
