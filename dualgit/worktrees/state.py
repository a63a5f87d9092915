"""One home for a container's host-side state: where each piece lives, and one `forget`.

Two places, and why:
- `$XDG_STATE_HOME/dualgit/containers/NAME/`, the folder shared with the container's agent
  (bind-mounted at /.dualgit/state): what listens inside, `serve`'s state and output, and what the
  host tells the agent (`serve.d/`, `setup-done`). The container writes there too, so the host reads
  it as data only and never follows a link in it (`agent.py`).
- `$XDG_STATE_HOME/dualgit/setup/NAME.KIND`, what the host alone writes: setup's `state`, `log` and
  `lock` (`setup_state.py`); the idle clock `active`, `asleep` and the `caps` last applied
  (`idle.py`). Never in the shared folder, where a container could forge them.
Every write of these goes through `background.atomic_write` (the shared folder's, through its own
no-follow walk). Standard library only: exec's path reads the idle clock.
"""

from __future__ import annotations

import os

from dualgit.background import atomic_write, state_dir

HOST_KINDS = ("state", "log", "lock", "active", "asleep", "caps", "workspace")


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
