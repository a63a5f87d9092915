"""Small helpers shared by the tests."""

from __future__ import annotations

import time


def wait_for(check, timeout: float = 20.0, every: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {getattr(check, '__name__', check)}")
        time.sleep(every)
