"""`git dual proxy supervise`: the daemon's parent. It runs `proxy run` as its child and starts it
again when it dies (kill -9, a crash, the OOM killer), so the URLs come back with no dualgit command
run. A proxy that keeps dying soon after it starts is backed off, said in the log and in
`proxy status`. SIGTERM (what `git dual proxy stop` sends) stops the child, then the supervisor.

Its pid file names it (`proxy.supervisor.pid`: `PID VERSION`), its lock says it lives (held for its
life, so never stale), and `proxy.supervisor.json` says how restarts stand."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable

from dualgit import __version__
from dualgit.background import DUALGIT, atomic_write
from dualgit.proxy import daemon, say

FAST_DEATH = 10.0  # seconds: a proxy that dies sooner after its start counts towards backing off
FIRST_DELAY = 0.1  # seconds before the first restart: the URLs are back well within 2 s
MAX_DELAY = 60.0


def log(message: str) -> None:
    say.log("supervisor: " + message)


def delay_after(fast_deaths: int) -> float:
    """Pure: how long to wait before the next start, after this many quick deaths in a row."""
    if fast_deaths <= 1:
        return FIRST_DELAY
    return min(0.5 * 2.0 ** (fast_deaths - 2), MAX_DELAY)


def describe(returncode: int) -> str:
    """Pure: a child's end as Popen reports it (a negative code is the signal that killed it)."""
    if returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        return f"was killed by {name}" + (" (as the OOM killer kills)" if sig == signal.SIGKILL else "")
    return f"exited with status {returncode}"


def supervise(replace: bool = False) -> int:
    life = daemon.supervisor_life()
    lock = daemon.hold_or_replace(life, replace)  # held for the supervisor's life
    if lock is None:
        return 0  # another supervisor runs, with its proxy
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    life.announce(__version__)
    fast, restarts = 0, 0
    args = [*DUALGIT, "proxy", "run", *(["--replace"] if replace else [])]
    try:
        while not stopping:
            began = time.monotonic()
            child = subprocess.Popen(args, stdin=subprocess.DEVNULL)
            code = child.wait()
            if stopping:
                break
            other = daemon.running()
            if other is not None:  # our proxy lost its lock to another (a foreground `proxy run`)
                log(f"another proxy runs (pid {other[0]}); nothing to supervise")
                break
            if code == 0:
                log("the proxy stopped on its own (SIGTERM sent to it directly); not restarted")
                break
            fast = fast + 1 if time.monotonic() - began < FAST_DEATH else 1
            restarts += 1
            delay = delay_after(fast)
            how = describe(code)
            if fast >= 3:
                log(f"the proxy keeps dying ({how}; {fast} times in a row within {FAST_DEATH:.0f} s of starting); "
                    f"backing off: next start in {delay:.1f} s")
            else:
                log(f"the proxy {how}; starting it again")
            _write_status(life.statusfile, restarts, fast, how, time.time() + delay)
            _sleep_unless_stopped(delay, lambda: stopping)
            replace = False
    finally:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            child.wait()
        life.clear()
        lock.close()
    return 0


def _sleep_unless_stopped(seconds: float, stopped: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stopped():
        time.sleep(min(0.05, max(end - time.monotonic(), 0)))


def _write_status(path: str, restarts: int, fast: int, how: str, next_start: float) -> None:
    atomic_write(path, json.dumps({"restarts": restarts, "crash_loop": fast >= 3, "last_death": how,
                                   "next_start": round(next_start, 3)}).encode())
