"""Running the proxy: in the foreground, or as a daemon with its pid, status and log files in the
user's state dir (`$XDG_STATE_HOME/dualgit`, else `~/.local/state/dualgit`).

The pid file also names the proxy's dualgit version. After an upgrade, the first command that makes
sure the proxy runs (a hook, `up`, `exec`, `urls`, `proxy start`) replaces an older one; a newer
one is left alone, so that two installs of different versions do not take turns."""

from __future__ import annotations

import os
import signal
import time

from dualgit import __version__, background
from dualgit.background import Lifecycle
from dualgit.errors import DualgitError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

DISABLE_ENV = "DUALGIT_PROXY"  # "0": never start the proxy on its own
STARTING_FOR = 10.0  # seconds a start is left to the caller that claimed it (`_claim_start`)


def folder() -> str:
    """The user's state dir, made when missing: where the proxy's and its supervisor's files live."""
    path = background.state_dir()
    os.makedirs(path, exist_ok=True)
    return path


def proxy_life() -> Lifecycle:
    d = folder()
    return Lifecycle(os.path.join(d, "proxy.lock"), os.path.join(d, "proxy.pid"), os.path.join(d, "proxy.status.json"))


def supervisor_life() -> Lifecycle:
    """The supervisor's lock (held for its life), pid file (`PID VERSION`) and restart status."""
    d = folder()
    return Lifecycle(os.path.join(d, "proxy.supervisor.lock"), os.path.join(d, "proxy.supervisor.pid"),
                     os.path.join(d, "proxy.supervisor.json"))


def files() -> tuple[str, str, str]:
    life = proxy_life()
    return life.pidfile, life.statusfile, os.path.join(folder(), "proxy.log")


def starting_marker() -> str:
    return os.path.join(folder(), "proxy.starting")


def supervisor_pid() -> int | None:
    """The live supervisor's pid: its lock is held (a dead one's went with it), its pid file names it."""
    return supervisor_life().pid()


def supervisor_status() -> dict[str, object] | None:
    """The supervisor's pid and how its restarts stand (None: no supervisor runs)."""
    import json

    life = supervisor_life()
    pid = life.pid()
    if pid is None:
        return None
    info: dict[str, object] = {"pid": pid, "restarts": 0, "crash_loop": False}
    try:
        with open(life.statusfile) as f:
            info.update(json.load(f))
    except (OSError, ValueError):
        pass
    return info


def running() -> tuple[int, str, str] | None:
    """The running proxy's pid, dualgit version and engine URL ("": from before the pid file named
    them). A proxy runs while it holds its lock: a pid file left by one that died (kill -9) names
    no proxy."""
    fields = proxy_life().said()
    if fields is None:
        return None
    try:
        os.kill(int(fields[0]), 0)
    except OSError:
        return None
    return int(fields[0]), fields[1] if len(fields) > 1 else "", " ".join(fields[2:])


def hold_or_replace(life: Lifecycle, replace: bool) -> IO[str] | None:
    """Take `life`'s lock (the proxy's, or its supervisor's) for this process's life. When another
    holds it: with `replace`, and a running proxy that gives way (`replaceable`), stop that one and
    its supervisor, and wait for the lock; else None."""
    lock = life.hold()
    if lock is not None:
        return lock
    other = running()
    if not (replace and other is not None and replaceable(other)):
        return None
    from dualgit.proxy.say import log

    log(f"replacing the proxy of dualgit {other[1] or '(older)'} (pid {other[0]}) with {__version__}'s")
    stop()
    return life.hold_when_free()


def engine_here() -> str:
    """The URL of the engine this process would serve ("" when none can be named)."""
    from dualgit.engine import find

    try:
        return find.endpoint().url()
    except DualgitError:
        return ""


def replaceable(found: tuple[int, str, str]) -> bool:
    """Whether a running proxy gives way to one started here: it is an older dualgit's, or it
    serves another engine than this process's environment names (`git dual proxy start`)."""
    return older(found[1]) or bool(found[2] and found[2] != engine_here())


def other_engine(found: tuple[int, str, str] | None, engine: str) -> str | None:
    """The one line that says a running proxy serves another engine than `engine`, or None."""
    if found is None or not found[2] or not engine or found[2] == engine:
        return None
    return (f"dualgit: the proxy serves the engine at {found[2]}, not this command's ({engine}), so this "
            "branch's URLs do not answer; `git dual proxy start` replaces it")


def running_pid() -> int | None:
    found = running()
    return found[0] if found else None


def older(version: str) -> bool:
    """Whether a proxy of this version is older than this dualgit (numbers compared part by part;
    a part that is not a number, such as 1rc1, counts as less than any number)."""
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(part) if part.isdigit() else -1 for part in v.split(".")) if v else ()

    return key(version) < key(__version__)


def run(head_timeout: float | None = None, replace: bool = False) -> int:
    """The proxy in the foreground, until SIGINT or SIGTERM. With `replace`, a running proxy of an
    older dualgit is stopped first (`ensure_started` asks for this after an upgrade)."""
    if head_timeout is None:
        head_timeout = float(os.environ.get("DUALGIT_PROXY_HEAD_TIMEOUT", "10"))
    keepalive_timeout = float(os.environ.get("DUALGIT_PROXY_KEEPALIVE_TIMEOUT")  # the old name still read
                              or os.environ.get("DUALGIT_PROXY_IDLE_TIMEOUT", "30"))  # a kept-alive connection with no request
    import asyncio

    from dualgit.proxy.say import log
    from dualgit.proxy.server import Proxy, new_loop, raise_fd_limit

    life = proxy_life()
    lock = hold_or_replace(life, replace)  # held for the process's life, never stale
    if lock is None:
        other = running()
        raise DualgitError(f"the proxy already runs{f' (pid {other[0]})' if other else ''}",
                           hint="`git dual proxy stop` stops it")
    raise_fd_limit()
    import gc

    gc.freeze()  # what is loaded by now lives as long as the proxy: full collections need not walk it
    loop = new_loop()
    asyncio.set_event_loop(loop)
    hot_path = os.environ.get("DUALGIT_PROXY_HOT_PATH", "1") != "0"
    proxy = Proxy(head_timeout=head_timeout, keepalive_timeout=keepalive_timeout, status_file=life.statusfile,
                  hot_path=hot_path)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, proxy.stopping.set)

    def ready() -> None:
        life.announce(__version__, proxy.api.endpoint.url())
        try:
            os.remove(starting_marker())
        except OSError:
            pass
        log(f"proxy ready (pid {os.getpid()}, dualgit {__version__})")

    try:
        loop.run_until_complete(proxy.serve(ready))
    finally:
        if running_pid() == os.getpid():  # not a newer proxy's files (a pid of ours may be a part of its)
            life.clear()
        loop.close()
        lock.close()
    return 0


def start(wait: float = 10.0) -> int | None:
    """Start the daemon, under its supervisor (`supervisor.py`), unless it runs (one of an older
    dualgit is replaced); return its pid once it is ready (None: not waited for)."""
    found = running()
    if found is not None and not replaceable(found):
        return found[0]
    _, _, logfile = files()
    args = ["proxy", "supervise"] if found is None else ["proxy", "supervise", "--replace"]
    child = background.spawn(args, log=logfile, guard=False) if _claim_start() else None
    if wait <= 0:
        return None
    deadline = time.monotonic() + wait + (10 if found else 0)  # the older proxy gets 10 s to stop (`stop`)
    while time.monotonic() < deadline:
        pid = running_pid()
        if pid is not None and (found is None or pid != found[0]):
            return pid
        if child is not None and os.waitpid(child, os.WNOHANG)[0]:
            child = None  # ours found another supervisor at work: wait for that one's proxy
            if supervisor_pid() is None:
                break
        time.sleep(0.05)
    raise DualgitError(f"the proxy did not start; its log ({logfile}) ends with:\n{tail(logfile)}",
                       hint="`git dual proxy status` says how its restarts stand; `git dual proxy run` runs it "
                       "in the foreground")


def _claim_start() -> bool:
    """Whether this caller starts the proxy: of many at once (fifty `exec`s after a reboot), the one
    that makes the marker file, which the proxy removes once ready. A claim older than STARTING_FOR
    (its proxy died starting) is taken over."""
    marker = starting_marker()
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        pass
    except OSError:
        return True  # no marker can be made here: start it anyway, the proxy's lock settles a race
    try:
        if time.time() - os.stat(marker).st_mtime < STARTING_FOR:
            return False
        os.utime(marker)  # taken over
    except OSError:
        return False  # removed meanwhile: its proxy is ready
    return True


def ensure_started(engine: str = "") -> bool:
    """What `up` and the hooks call: start the proxy when it isn't running (never fails them).
    Whether the proxy is on: False when DUALGIT_PROXY=0 turns it off. With `engine`, the caller's
    engine URL, a proxy that serves another engine is said on stderr (it is left running: another
    shell's commands may be using it)."""
    if os.environ.get(DISABLE_ENV) == "0":
        return False
    found = running()
    said = other_engine(found, engine)
    if said:
        import sys

        print(said, file=sys.stderr)
    if found is None or older(found[1]):  # not running, or left running by an older dualgit
        try:
            start(wait=0)
        except (DualgitError, OSError):
            pass  # `git dual proxy status` says why
    return True


def stop(wait: float = 10.0) -> bool:
    """Stop the supervisor (so that nothing starts the proxy again), then the proxy; whether
    anything was running."""
    stopped = False
    for find in (supervisor_pid, running_pid):
        pid = find()
        if pid is None:
            continue
        stopped = True
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            continue
        deadline = time.monotonic() + wait
        while find() == pid and time.monotonic() < deadline:
            time.sleep(0.05)
        if find() == pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return stopped


def status() -> dict[str, object]:
    _, status_file, logfile = files()
    found = running()
    info: dict[str, object] = {"running": found is not None, "pid": found[0] if found else None, "log": logfile}
    if found is not None:
        info["version"], info["engine"] = found[1], found[2] or None
        import json  # not at the top: exec imports this module to check that the proxy runs

        try:
            with open(status_file) as f:
                info.update(json.load(f))
        except (OSError, ValueError):
            pass
    info["supervisor"] = supervisor_status()
    return info


def tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"
