"""Detached dualgit processes (setup runner, clean-up, proxy) and the user's state dir they share.
Standard library only: `git dual exec` and the hooks call it."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs exec a share of its run: only the type checker reads what follows
if TYPE_CHECKING:
    from typing import IO

# How dualgit starts itself. -P keeps the current folder off sys.path: it is often a worktree, which
# a container writes to, and a `dualgit` package planted there would otherwise run on the host.
DUALGIT = [sys.executable, "-P", "-m", "dualgit"]


def state_dir(*parts: str) -> str:
    """`$XDG_STATE_HOME/dualgit/...`, else `~/.local/state/dualgit/...` (not created here)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "dualgit", *parts)


def user_config_file() -> str:
    """`$XDG_CONFIG_HOME/dualgit/config.toml`, else `~/.config/dualgit/config.toml`: the user's defaults."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "dualgit", "config.toml")


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `path` whole or not at all: a temporary file beside it, renamed over it, so that a
    reader never sees half of it and a crash leaves the old one."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # as asked, whatever the umask (a hook or a shim must be executable)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def spawn(args: list[str], log: str | None = None, guard: bool = True) -> int:
    """Start `python -m dualgit ARGS` in a session of its own, stdin from /dev/null and output to
    `log` (appended) or /dev/null; the caller does not wait. `guard` keeps its git calls hook-free."""
    null = os.open(os.devnull, os.O_RDWR)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log else null
    env = {**os.environ, "DUALGIT_RUNNING": "1"} if guard else dict(os.environ)
    try:
        return os.posix_spawn(sys.executable, [*DUALGIT, *args], env, setsid=True,
                              file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, out, 1),
                                            (os.POSIX_SPAWN_DUP2, out, 2)])
    finally:
        if out != null:
            os.close(out)
        os.close(null)


def locked(path: str) -> bool:
    """Whether a live process holds `path`'s lock (one that died, or is a zombie, holds none): how
    the proxy, its supervisor and a setup runner are known to be alive, with no stale pid to trust."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


class Lifecycle:
    """A long-lived process's files, one way for the proxy, its supervisor and the setup runner:
    a lock it holds for its life (so it is alive exactly while the lock is held, never stale), a pid
    file (`PID` and what else it says of itself: version, engine), and a status file."""

    __slots__ = ("pidfile", "lockfile", "statusfile")

    def __init__(self, lockfile: str, pidfile: str = "", statusfile: str = "") -> None:
        self.lockfile, self.pidfile, self.statusfile = lockfile, pidfile, statusfile

    def hold(self) -> IO[str] | None:
        """Take the lock for this process's life: the open file that holds it (keep it), or None
        when another process holds it."""
        import fcntl

        lock = self._open()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return None
        return lock

    def hold_when_free(self) -> IO[str]:
        """The lock, once whoever holds it lets go (`hold`'s, waiting)."""
        import fcntl

        lock = self._open()
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock

    def _open(self) -> IO[str]:
        os.makedirs(os.path.dirname(self.lockfile), exist_ok=True)
        return open(self.lockfile, "a")

    def alive(self) -> bool:
        return locked(self.lockfile)

    def said(self) -> list[str] | None:
        """What the live process's pid file says (`PID ...` split), or None: none lives."""
        try:
            with open(self.pidfile) as f:
                fields = f.read().split()
            int(fields[0])
        except (OSError, ValueError, IndexError):
            return None
        return fields if self.alive() else None

    def pid(self) -> int | None:
        fields = self.said()
        return int(fields[0]) if fields else None

    def announce(self, *fields: str) -> None:
        """Write the pid file: this process's pid, then `fields`."""
        atomic_write(self.pidfile, (" ".join([str(os.getpid()), *fields]) + "\n").encode())

    def clear(self) -> None:
        """Remove the pid and status files (the lock file stays: its lock is what counts)."""
        for path in (self.pidfile, self.statusfile):
            if path:
                try:
                    os.remove(path)
                except OSError:
                    pass


def reconcile_later() -> None:
    """`git dual gc --quiet` for the repository of the current directory, detached."""
    spawn(["gc", "--quiet"])
