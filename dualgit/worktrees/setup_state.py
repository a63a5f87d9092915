"""Where a worktree's setup stands, in files under the user's state dir, one set per container name:
`<name>.state` (one line: `running|done|failed <container id> [step]`), `<name>.log` (every step's
output) and `<name>.lock` (held by the runner while it runs, so a dead runner leaves no stale state:
the lock goes with its process). Lean on purpose: `git dual exec` reads it on every run."""

from __future__ import annotations

import os
import sys
import time

from dualgit.background import Lifecycle, atomic_write, spawn
from dualgit.naming import container_name
from dualgit.worktrees.state import host_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.git.locate import Location

SETUP_CONTAINER = "DUALGIT_SETUP_CONTAINER"  # set by the setup runner for its steps: the container's id


def paths(container: str) -> tuple[str, str, str]:
    return host_file(container, "state"), host_file(container, "log"), host_file(container, "lock")


class State:
    __slots__ = ("status", "container_id", "step")

    def __init__(self, status: str, container_id: str = "", step: str = "") -> None:
        self.status = status  # none, running, done, failed
        self.container_id = container_id
        self.step = step

    @property
    def before_container(self) -> bool:
        """What stands before a container is made (the hook's pull of its image), recorded with no
        container id; not a removed container's setup."""
        return self.status != "none" and not self.container_id


def read(container: str) -> State:
    state_file, _, lock_file = paths(container)
    try:
        with open(state_file) as f:
            parts = f.read().strip().split(" ", 2)
    except OSError:
        return State("none")
    state = State(parts[0], parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else "")
    if state.status == "running" and not runner_alive(state_file, lock_file):
        return State("failed", state.container_id, f"{state.step or 'setup'} (interrupted)")
    return state


def write(container: str, status: str, container_id: str, step: str = "") -> None:
    state_file = paths(container)[0]
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    atomic_write(state_file, (f"{status} {container_id} {step}".rstrip() + "\n").encode())


def runner(container: str) -> Lifecycle:
    """The setup runner's lock, held while it works: one runner at a time, and none stale."""
    return Lifecycle(host_file(container, "lock"))


def runner_alive(state_file: str, lock_file: str) -> bool:
    """Whether a runner holds the lock. A just-spawned runner may not hold it yet: the spawner
    writes `running` first and the runner takes the lock at once, so a brief miss reads as alive."""
    return Lifecycle(lock_file).alive() or _young(state_file)


def _young(state_file: str, grace: float = 5.0) -> bool:
    try:
        return time.time() - os.stat(state_file).st_mtime < grace
    except OSError:
        return False


def log_tail(container: str, lines: int = 15) -> str:
    try:
        with open(paths(container)[1], errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def wait(container: str, show_progress: bool, until: float | None = None) -> int | None:
    """Block while setup runs; None when it is done (or there is none), else the exit code to use
    after printing why (setup failed). `until`: a `time.monotonic()` past which a setup still running
    is an error."""
    last, said, began = "", False, time.monotonic()
    while True:
        state = read(container)
        if until is not None and state.status == "running" and time.monotonic() > until:
            from dualgit.errors import DualgitError

            raise DualgitError(f"setup still runs (step `{state.step}`) and the time given ran out",
                               hint="follow it with `git dual logs -f`, give a longer timeout, or run without waiting for setup")
        if state.status in ("none", "done", "failed") and last:
            sys.stderr.write("\r\x1b[K")
        # failed before a container was made (its image did not come): the caller tries again, and says why
        if state.status in ("none", "done") or (state.status == "failed" and state.before_container):
            return None
        if state.status == "failed":
            sys.stderr.write(f"dualgit: setup failed at step `{state.step}`; its last lines:\n")
            sys.stderr.write(log_tail(container))
            sys.stderr.write("dualgit: `git dual logs` shows all of it; `git dual up --setup` runs setup again; "
                             "`git dual exec --no-wait` runs anyway\n")
            return 1
        if show_progress and state.step != last:
            sys.stderr.write(f"\r\x1b[Kdualgit: waiting for setup: {state.step} ...")
            sys.stderr.flush()
            last = state.step
        elif not show_progress and not said and time.monotonic() - began > 1:  # a log or an agent: a wait is not a hang
            sys.stderr.write(f"dualgit: waiting for setup ({state.step}); `git dual logs -f` follows it\n")
            sys.stderr.flush()
            said = True
        time.sleep(0.1)


def start_background(loc: Location, container: str, container_id: str, force: bool = False) -> None:
    """Mark setup as running and spawn its runner, detached, so the caller need not wait."""
    write(container, "running", container_id, "starting")
    spawn(["setup-run", loc.worktree, *(["--force"] if force else [])], log=paths(container)[1])


def create_in_background(loc: Location, step: str) -> None:
    """The hook's way with an image that is not here: the pull and the container that follows it
    are left to a detached runner, which holds the setup lock meanwhile, so that `git dual ls` says
    `pull IMAGE` and `git dual exec` waits for it."""
    name = container_name(loc.common_dir, loc.worktree)
    write(name, "running", "", step)
    spawn(["setup-run", "--create", loc.worktree], log=paths(name)[1])
