"""`git dual sync-run WORKTREE`: one process per remote worktree, for as long as it has a
container: the helper kept up, the files kept in step (`files.py`), the ports forwarded
(`forwards.py`), and where it stands written to its status file (`worktrees/state.sync_status`).

States: `sync` (the first whole sync runs: setup and `exec` wait for it), `synced` (unison runs
again each second), `paused` (the engine cannot be reached, or unison failed: retried every few
seconds, nothing is lost on either side, since unison moves a file only once it is whole)."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from dualgit.background import atomic_write, state_dir
from dualgit.config import load
from dualgit.engine import find
from dualgit.engine.api import ApiError, DockerAPI
from dualgit.errors import DualgitError
from dualgit.git.locate import locate, registered
from dualgit.naming import container_name
from dualgit.remote import files
from dualgit.remote.forwards import Forwards
from dualgit.worktrees import agent, labels, state, sync
from dualgit.worktrees.inventory import port_list

RETRY = 2.0  # seconds between attempts while paused
FORWARD_EVERY = 5  # seconds between looks at which ports the container declares


class Status:
    def __init__(self, name: str) -> None:
        self.name = name
        before: dict[str, Any] = state.sync_status(name) or {}
        self.data: dict[str, Any] = {"state": "sync", "since": time.time(), "error": None, "pid": os.getpid(),
                                     "conflicts": list(before.get("conflicts") or []),
                                     "forwards": dict(before.get("forwards") or {}), "synced_once": False}

    def set(self, **changes: Any) -> None:
        if "state" in changes and changes["state"] != self.data["state"]:
            changes.setdefault("since", time.time())
        self.data.update(changes)
        os.makedirs(os.path.dirname(state.sync_file(self.name)), exist_ok=True)
        atomic_write(state.sync_file(self.name), json.dumps(self.data).encode())


def run(args: list[str]) -> int:
    loc = locate(args[0] if args else ".")
    name = container_name(loc.common_dir, loc.worktree)
    life = sync.lifecycle(name)
    held = life.hold()
    if held is None:
        return 0  # one runs already
    life.announce()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    status = Status(name)
    status.set()  # its own, from the start: `exec` waits for this process's first sync, not an earlier one's
    api = DockerAPI(find.chosen(state.engine_of(name)))
    forwards = Forwards(api, name)
    log_path = state_dir("sync", name, "log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    try:
        unison = sync.local_unison()
    except DualgitError as exc:
        status.set(state="paused", error=exc.message)
        return 1
    owner = os.stat(loc.worktree)
    user = f"{owner.st_uid}:{owner.st_gid}"
    while not stopping:
        if not registered(loc):
            break  # the worktree is gone: nothing left to sync
        try:
            _forward(api, name, forwards, status)
            helper = sync.ensure_helper(api, loc, name, unison, agent.TOOLS_IMAGE)
        except ApiError as exc:
            if exc.status == 404:
                break  # its container is gone (`down --rm`): the next one made starts a sync anew
            status.set(state="paused", error=exc.message)
            _sleep(RETRY, stopping)
            continue
        except (DualgitError, OSError) as exc:
            status.set(state="paused", error=getattr(exc, "message", None) or str(exc))
            _sleep(RETRY, stopping)
            continue
        config = load(loc.worktree)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if not status.data["synced_once"]:
                status.set(state="sync", error=None)
            code = files.once(loc, name, config, unison, helper, user, log)
            _conflicts(status, log_path)
            if code >= 2:
                status.set(state="paused", error=f"unison exited {code} (its log: {log_path})")
                _sleep(RETRY, stopping)
                continue
            status.set(state="synced", error=None, synced_once=True)
            watching = files.watch(loc, name, config, unison, helper, user, log)
            rounds = 0
            while watching.poll() is None and not stopping and registered(loc):
                _conflicts(status, log_path)
                if rounds % FORWARD_EVERY == 0:  # a port declared anew comes with a new container: rare
                    _forward(api, name, forwards, status, quiet=True)
                rounds += 1
                time.sleep(1)
            if watching.poll() is None:
                watching.terminate()
                watching.wait(timeout=30)
            elif not stopping:
                status.set(state="paused", error=f"unison stopped ({watching.returncode}): the engine is out of reach?")
                _sleep(RETRY, stopping)
        finally:
            os.close(log)
    forwards.close()
    status.set(state="paused", error="its sync process was stopped" if stopping else "its worktree or container is gone")
    life.clear()
    return 0


def _forward(api: DockerAPI, name: str, forwards: Forwards, status: Status, quiet: bool = False) -> None:
    """Listen for each port the branch's container declares (its labels say which)."""
    try:
        found = api.inspect_container(name)
    except (ApiError, DualgitError, OSError):
        if quiet:
            return
        raise
    tags = (found.get("Config") or {}).get("Labels") or {}
    http, tcp = port_list(tags.get(labels.PORTS, "")), port_list(tags.get(labels.TCP_PORTS, ""))
    wanted = [*http, *tcp, *(agent.relay_ports(http).values() if tags.get(labels.AGENT) else [])]
    forwards.want(wanted, status.data["forwards"])
    if forwards.ports() != status.data["forwards"]:
        status.set(forwards=forwards.ports())


def _conflicts(status: Status, log_path: str) -> None:
    """Conflict copies unison named in its output since last read, added to the status."""
    seen = status.data.setdefault("log_offset", 0)
    try:
        with open(log_path, "rb") as f:
            f.seek(seen)
            text = f.read().decode(errors="replace")
            offset = f.tell()
    except OSError:
        return
    new = [c for c in (files.conflicts(line) for line in text.splitlines()) if c]
    if new or offset != seen:
        status.set(log_offset=offset, conflicts=(status.data["conflicts"] + new)[-50:])


def _sleep(seconds: float, stopping: list[int]) -> None:
    end = time.monotonic() + seconds
    while not stopping and time.monotonic() < end:
        time.sleep(0.1)
