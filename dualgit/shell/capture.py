"""A command run in a worktree's container with its output kept, not passed through: what the MCP
server's `exec` tool returns. `git dual exec` (`exec.py`) is the terminal's version of the same run.

Output is kept to a bounded size per stream: its first HEAD bytes and its last `limit - HEAD`, with
a marker where the middle was cut. A timeout is enforced inside the container, by the agent's
busybox `timeout` (SIGTERM to the command, whatever the engine's host); a command whose children
still hold its output open after that is let go of here GRACE seconds later.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from dualgit.engine.api import DockerAPI, path
from dualgit.engine.pipe import split_frames
from dualgit.errors import DualgitError
from dualgit.git.locate import Location
from dualgit.naming import container_name
from dualgit.shell.exec import NOT_FOUND_MARKS, RUNTIME_FAILED, create_exec, engine_of, inside, text_only
from dualgit.worktrees import agent
from dualgit.worktrees.idle import Use
from dualgit.worktrees.setup_state import read as read_setup
from dualgit.worktrees.setup_state import wait as wait_for_setup

LIMIT = 64 * 1024  # bytes kept of each stream, by default
HEAD = 8 * 1024  # of which the first ones; the rest are the last ones (a test run's summary is at its end)
GRACE = 5.0  # seconds after the timeout before the stream is let go of
TIMED_OUT = 143  # busybox timeout's exit code: the command took SIGTERM


@dataclass
class Captured:
    exit_code: int | None  # None: the command outlived its timeout and the grace after it
    stdout: str
    stderr: str
    stdout_bytes: int  # how many it wrote in all, cut or not
    stderr_bytes: int
    timed_out: bool
    seconds: float


class Kept:
    """One stream's bytes: the first `head`, and the last `tail` (trimmed now and then)."""

    __slots__ = ("head", "tail", "head_limit", "tail_limit", "total")

    def __init__(self, limit: int) -> None:
        self.head_limit = min(HEAD, limit // 2)
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        if len(self.tail) > 2 * self.tail_limit:
            del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> str:
        tail = bytes(self.tail[-self.tail_limit:]) if self.tail_limit else b""
        cut = self.total - len(self.head) - len(tail)
        middle = f"\n[... {cut} bytes cut by dualgit ...]\n".encode() if cut > 0 else b""
        return (bytes(self.head) + middle + tail).decode("utf-8", "replace")


def run(loc: Location, cmd: list[str], cwd: str, env: list[str] | None = None, stdin: bytes | None = None,
        timeout: float = 600.0, limit: int = LIMIT, root: bool = False, wait: bool = True,
        service: str | None = None) -> Captured:
    """Run `cmd` in `loc`'s container, in `cwd` (a folder of the worktree), and keep its output; or
    in its service `service`'s container (in that one's own folder, and let go of at the timeout
    rather than sent SIGTERM inside: the agent's busybox is not there). Setup is waited for first
    (with `wait`), within the same timeout."""
    env = list(env or [])
    cwd = inside(loc, cwd)
    text_only(cmd, env, cwd)
    began = time.monotonic()
    deadline = began + timeout
    name = container_name(loc.common_dir, loc.worktree)
    api = DockerAPI(engine_of(name))
    with Use(name):
        if wait:
            _setup_done(name, deadline)
        wrapped = [agent.BUSYBOX, "timeout", "-s", "TERM", str(max(1, math.ceil(deadline - time.monotonic()))), *cmd]
        body = {"AttachStdin": stdin is not None, "AttachStdout": True, "AttachStderr": True, "Tty": False,
                "Cmd": wrapped, "WorkingDir": cwd, "Env": env, **({"User": "0:0"} if root else {})}
        target = name
        if service is not None:
            from dualgit.worktrees.inventory import container_for

            target = container_for(name, service)
            body["Cmd"] = cmd
            del body["WorkingDir"]
        exec_id, brought_up = create_exec(api, target, body, loc)
        if brought_up and wait:
            _setup_done(name, deadline)
        code, out, err, cut_loose = _collect(api, exec_id, stdin, deadline + GRACE, limit)
        if code in (126, 127) and agent.BUSYBOX.encode() in err.runtime:
            # a container made without the agent (no busybox image at the time): no timeout inside it
            body["Cmd"] = cmd
            exec_id, _ = create_exec(api, target, body, loc)
            code, out, err, cut_loose = _collect(api, exec_id, stdin, deadline + GRACE, limit)
    if err.runtime:
        lowered = err.runtime.lower()
        if code in (126, 127) and any(mark in lowered for mark in NOT_FOUND_MARKS):
            code = 127
            err.add(f"{cmd[0]}: command not found\n".encode())
        else:
            err.add(err.runtime)
    _not_found_said_plainly(err, cmd[0], code)
    timed_out = cut_loose or (code == TIMED_OUT and time.monotonic() >= deadline)  # busybox's seconds are whole: ceil'd
    return Captured(None if cut_loose else code, out.text(), err.text(), out.total, err.total, timed_out,
                    round(time.monotonic() - began, 3))


def _setup_done(name: str, deadline: float) -> None:
    if wait_for_setup(name, show_progress=False, until=deadline) is not None:
        step = read_setup(name).step
        raise DualgitError(f"setup failed at step `{step}`, so nothing runs until it is fixed",
                           hint="read why in the setup log (`git dual logs`), fix it, then run setup again "
                                "(`git dual up --setup`); or run without waiting for setup")


class Stream(Kept):
    __slots__ = ("runtime",)

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.runtime = b""  # the engine's runtime's words about a program that never ran


def _collect(api: DockerAPI, exec_id: str, stdin: bytes | None, until: float, limit: int,
             ) -> tuple[int | None, Stream, Stream, bool]:
    """Start the exec and read its multiplexed output until it ends or `until` passes."""

    out, err = Stream(limit), Stream(limit)
    sock, buffer = api.hijack(path("/exec/%s/start", exec_id), {"Detach": False, "Tty": False})
    try:
        if stdin is not None:
            threading.Thread(target=_feed, args=(sock, stdin), daemon=True).start()
        first = True
        while True:
            frames, buffer = split_frames(buffer)
            for kind, payload in frames:
                if (first and payload.startswith(RUNTIME_FAILED)) or err.runtime:
                    err.runtime += payload
                else:
                    (err if kind == 2 else out).add(payload)
                first = False
            left = until - time.monotonic()
            if left <= 0:
                return None, out, err, True
            sock.settimeout(left)
            try:
                chunk = sock.recv(262144)
            except TimeoutError:
                return None, out, err, True
            if not chunk:
                break
            buffer += chunk
    finally:
        sock.close()
    return max(api.exit_code(exec_id), 0), out, err, False


def _feed(sock: Any, data: bytes) -> None:
    import socket

    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the command ended without reading it all


def _not_found_said_plainly(err: Kept, program: str, code: int | None) -> None:
    """busybox timeout's words for a missing program (`timeout: can't execute 'x': No such file or
    directory`) become the shell's (`x: command not found`)."""
    said = f"timeout: can't execute '{program}': No such file or directory\n".encode()
    if code == 127 and bytes(err.head).endswith(said) and err.total == len(err.head):
        del err.head[-len(said):]
        err.total -= len(said)
        err.add(f"{program}: command not found\n".encode())


def folder_of(worktree: str, folder: str | None) -> str:
    """The folder `folder` (relative to the worktree) names, which must stay inside it and exist."""
    if not folder:
        return worktree
    if os.path.isabs(folder):
        raise DualgitError(f"folder {folder!r} is absolute", hint="give it relative to the worktree's root, such as src/app")
    joined = os.path.normpath(os.path.join(worktree, folder))
    if joined != worktree and not joined.startswith(worktree.rstrip("/") + "/"):
        raise DualgitError(f"folder {folder!r} leads out of the worktree", hint="give a folder inside it, such as src/app")
    if not os.path.isdir(joined):
        raise DualgitError(f"folder {folder!r} is not a folder of {worktree}", hint="give one that exists, such as .")
    return joined
