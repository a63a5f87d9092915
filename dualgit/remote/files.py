"""unison between this machine's folders and the helper's volumes (`worktrees/sync.py`).

The local root is a folder of three links (worktree, state, git) that unison follows, so one
unison process keeps all three parts; the remote root is the helper's /sync, reached by running
`git dual sync-pipe` in place of ssh: an exec of unison's server in the helper, over the engine's
own connection. `-prefer newer -copyonconflict`: a file changed on both sides keeps the newer
in place and the other beside it as `NAME (conflict_on_DATE)`, on both sides once synced again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

from dualgit.background import DUALGIT, atomic_write, state_dir
from dualgit.config import Config
from dualgit.git.locate import Location
from dualgit.worktrees import agent, state, sync

CONFLICT = re.compile(r"conflict_on_\d{4}-\d{2}-\d{2}")


def local_root(loc: Location, name: str) -> str:
    """The folder of links unison syncs from (made, and its links pointed right, here)."""
    root = state_dir("sync", name, "root")
    os.makedirs(root, exist_ok=True)
    os.makedirs(agent.folder(name), exist_ok=True)
    for part, target in (("worktree", loc.worktree), ("state", agent.folder(name)), ("git", loc.common_dir)):
        link = os.path.join(root, part)
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        temp = f"{link}.{os.getpid()}"
        os.symlink(target, temp)
        os.replace(temp, link)
    return root


def pipe_script(name: str) -> str:
    """What unison runs in place of ssh: `git dual sync-pipe`, whatever arguments it is given."""
    path = state_dir("sync", name, "pipe")
    script = f"#!/bin/sh\nexec {shlex.join([*DUALGIT, 'sync-pipe'])}\n"
    try:
        with open(path) as f:
            if f.read() == script:
                return path
    except OSError:
        pass
    atomic_write(path, script.encode(), 0o755)
    return path


def argv(loc: Location, name: str, config: Config, unison: sync.Unison, repeat: bool) -> list[str]:
    ignore, forced = sync.ignored(loc, config)
    root = local_root(loc, name)
    args = [unison.program, root, f"ssh://dualgit/{sync.ROOT}", "-batch", "-auto", "-ui", "text", "-dumbtty",
            "-prefer", "newer", "-copyonconflict", "-confirmbigdel=false", "-contactquietly",
            "-sshcmd", pipe_script(name), "-servercmd", "unison", "-ignore", "Path .unison",
            "-follow", "Path worktree", "-follow", "Path state", "-follow", "Path git",
            "-log=false", "-terse"]
    for pattern in ignore:
        args += ["-ignore", pattern]
    for path in forced:
        args += ["-forcepartial", f"Path {path} -> {root}"]
    if repeat:
        args += ["-repeat", "1"]
    return args


def env(name: str, helper: str, unison: sync.Unison, user: str) -> dict[str, str]:
    """unison's environment here: its archive folder, and what `sync-pipe` needs to reach the helper."""
    archive = state_dir("sync", name, "unison")
    os.makedirs(archive, exist_ok=True)
    return {**os.environ, "UNISON": archive, "DUALGIT_SYNC_HELPER": helper,
            "DUALGIT_SYNC_SERVER": json.dumps(sync.server_command(unison)), "DUALGIT_SYNC_USER": user,
            "DUALGIT_SYNC_ENGINE": state.engine_of(name)}


def conflicts(line: str) -> str | None:
    """The conflict copy in the worktree a line of unison's output names, once (when it is copied
    to the other side): its path there."""
    if not line.startswith("[END] Copying worktree/") or not CONFLICT.search(line):
        return None  # one of the state folder's is the agent's and the host's both writing a file of theirs
    return line[len("[END] Copying worktree/"):].strip()


def once(loc: Location, name: str, config: Config, unison: sync.Unison, helper: str, user: str, log: int,
         ) -> int:
    """One whole sync: unison's exit code (0 in step, 1 some skipped, 2 some failed, 3 fatal)."""
    return subprocess.call(argv(loc, name, config, unison, False), env=env(name, helper, unison, user),
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def watch(loc: Location, name: str, config: Config, unison: sync.Unison, helper: str, user: str, log: int,
          ) -> subprocess.Popen[bytes]:
    """unison syncing again each second, until it fails (the engine gone) or is stopped."""
    return subprocess.Popen(argv(loc, name, config, unison, True), env=env(name, helper, unison, user),
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
