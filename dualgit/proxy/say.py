"""The proxy's log: one timestamped line on stderr, which the daemon's log file receives."""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S ") + message, file=sys.stderr, flush=True)
