"""One home for a container's host-side state: where each piece lives, and one `forget`.

Two places, and why:
- `$XDG_STATE_HOME/dualgit/containers/NAME/`, the folder shared with the container's agent
  (bind-mounted at /.dualgit/state): what listens inside, `serve`'s state and output, and what the
  host tells the agent (`serve.d/`, `setup-done`). The container writes there too, so the host reads
  it as data only and never follows a link in it (`agent.py`).
- `$XDG_STATE_HOME/dualgit/setup/NAME.KIND`, what the host alone writes: setup's `state`, `log` and
  `lock` (`setup_state.py`); the idle clock `active`, `asleep` and the `caps` last applied
  (`idle.py`); the `engine` it was made on (`engines.py`). Never in the shared folder, where a
  container could forge them.
Every write of these goes through `background.atomic_write` (the shared folder's, through its own
no-follow walk). Standard library only: exec's path reads the idle clock.
"""

from __future__ import annotations

import os

from dualgit.background import atomic_write, state_dir

HOST_KINDS = ("state", "log", "lock", "active", "asleep", "caps", "workspace", "engine")


def shared_folder(name: str) -> str:
    """The folder the container `name` shares with its agent (not created here)."""
    return state_dir("containers", name)


def host_file(name: str, kind: str) -> str:
    """The host-only file of `kind` (one of HOST_KINDS) for the container `name`."""
    assert kind in HOST_KINDS, kind
    return state_dir("setup", f"{name}.{kind}")


def read_line(name: str, kind: str) -> str | None:
    """The one line a host-only file holds; None when there is none."""
    try:
        with open(host_file(name, kind)) as f:
            return f.read().strip()
    except OSError:
        return None


def write_line(name: str, kind: str, line: str) -> None:
    file = host_file(name, kind)
    os.makedirs(os.path.dirname(file), exist_ok=True)
    atomic_write(file, (line + "\n").encode())


def applied_caps(name: str) -> str | None:
    """The caps last applied to the container (`containers.caps_text`), as the host recorded them."""
    return read_line(name, "caps")


def record_caps(name: str, caps: str) -> None:
    write_line(name, "caps", caps)


def engine_of(name: str) -> str:
    """The name of the engine the container `name` was made on, as the config named it
    (`find.named` reads it); DEFAULT when none was recorded."""
    from dualgit.engine.find import DEFAULT

    return read_line(name, "engine") or DEFAULT


def sync_file(name: str) -> str:
    """Where a remote worktree's sync process (`remote/run.py`) says where it stands."""
    return state_dir("sync", f"{name}.json")


def sync_status(name: str) -> dict[str, object] | None:
    """The sync's last word: {"state": "sync" | "synced" | "paused", "since", "error", "conflicts",
    "forwards": {container port: "127.0.0.1:PORT" here}}, with "running": whether its process
    lives; None when this worktree's files are not synced (a local engine binds them)."""
    import json

    from dualgit.background import locked

    try:
        with open(sync_file(name)) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict):
        return None
    try:  # its process is the one that wrote it, and lives
        with open(state_dir("sync", f"{name}.pid")) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pid = None
    found["running"] = found.get("pid") == pid and locked(state_dir("sync", f"{name}.lock"))
    return found


def forwarded(name: str) -> dict[str, str]:
    """A synced container's ports as its live sync process forwards them here: container port ->
    "127.0.0.1:PORT" ({} while none runs)."""
    found = sync_status(name) or {}
    forwards = found.get("forwards") if found.get("running") else None
    return {str(k): str(v) for k, v in forwards.items()} if isinstance(forwards, dict) else {}


def sync_word(found: dict[str, object] | None) -> str | None:
    """What `ls` says of a sync: `sync` (the first is running), `sync paused`, or None (in step)."""
    if found is None:
        return None
    if not found.get("running") or found.get("state") == "paused":
        return "sync paused"
    return "sync" if found.get("state") == "sync" else None


def wait_for_sync(name: str, timeout: float = 600) -> str | None:
    """Until the worktree's first sync is done (what `exec` and setup wait for): None, or what
    stands in the way once `timeout` passed (the engine out of reach)."""
    import time

    began = time.monotonic()
    while True:
        found = sync_status(name)
        if found is None or (found.get("running") and found.get("synced_once")):
            return None
        waited = time.monotonic() - began
        if waited > timeout or (waited > 10 and (not found.get("running") or found.get("state") == "paused")):
            return str(found.get("error") or ("its sync process is not running" if not found.get("running")
                                              else "the first sync has not finished"))
        time.sleep(0.05)


def forget(name: str) -> None:
    """Everything the host kept for a container that is gone: its host-only files, and its shared
    folder (a link in it is removed, not followed)."""
    import shutil

    for kind in HOST_KINDS:
        try:
            os.remove(host_file(name, kind))
        except OSError:
            pass
    shutil.rmtree(shared_folder(name), ignore_errors=True)
    shutil.rmtree(state_dir("sync", name), ignore_errors=True)  # links, archives and log; not what they point at
    for leftover in (sync_file(name), *(state_dir("sync", f"{name}.{kind}") for kind in ("pid", "lock"))):
        try:
            os.remove(leftover)
        except OSError:
            pass
