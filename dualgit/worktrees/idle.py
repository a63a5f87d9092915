"""How long a branch has been idle, whether it sleeps, and what is using it, in files beside its
setup state (`$XDG_STATE_HOME/dualgit/setup/NAME.*`), which only the host writes:

- `NAME.active`: its mtime is the branch's last activity. `git dual exec` (the shims and `git dual
  shell` too) holds a shared lock on it while its command runs, and sets the mtime at both ends;
  the proxy sets it while requests come. The proxy takes the lock exclusively to put the branch to
  sleep, so no command can start meanwhile, and none is running then.
- `NAME.asleep`: the proxy stopped the container because it was idle (the file holds when). A
  stopped container without it was stopped by the user (`git dual down`) and stays down.
- `NAME.caps`: the caps last applied to the container (`memory cpus`), so that `up` updates them
  live only when they change.

Standard library only: exec takes the lock on every run."""

from __future__ import annotations

import os
import time

from dualgit.worktrees.state import host_file, write_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


def ago(seconds: float) -> str:
    """How long, as `ls` says it: 45s, 12m, 3h, 2d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _path(name: str, kind: str) -> str:
    return host_file(name, kind)


class Use:
    """A command running in the branch (`with Use(name):`): it keeps the branch awake, and counts as
    activity when it starts and when it ends. Waits while the proxy puts the branch to sleep."""

    __slots__ = ("name", "fd")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fd = -1

    def __enter__(self) -> Use:
        import fcntl

        try:
            self.fd = _open_active(self.name)
            fcntl.flock(self.fd, fcntl.LOCK_SH)
            os.utime(self.fd)
        except OSError:
            pass  # no state dir to write: the command runs all the same
        return self

    def __exit__(self, *_: object) -> None:
        if self.fd >= 0:
            try:
                os.utime(self.fd)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = -1


def last_active(name: str) -> float | None:
    try:
        return os.stat(_path(name, "active")).st_mtime
    except OSError:
        return None


def touch(name: str, when: float | None = None) -> None:
    """Record activity (the proxy's requests) at `when` (now by default)."""
    when = time.time() if when is None else when
    try:
        fd = _open_active(name)
    except OSError:
        return
    try:
        os.utime(fd, (when, when))
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_active(name: str) -> int:
    """The branch's `.active` file, opened (made, with its folder, when missing)."""
    file = _path(name, "active")
    try:
        return os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(file), exist_ok=True)
        return os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def claim(name: str) -> int | None:
    """The branch's lock, held exclusively (an fd to close when done), or None while a command runs
    in it. While held, no `git dual exec` can start there."""
    import fcntl

    try:
        fd = _open_active(name)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def in_use(name: str) -> bool:
    fd = claim(name)
    if fd is None:
        return True
    os.close(fd)
    return False


def asleep_since(name: str) -> float | None:
    """When the proxy put the branch to sleep; None when it is not asleep."""
    try:
        with open(_path(name, "asleep")) as f:
            return float(f.read().strip() or 0)
    except (OSError, ValueError):
        return None


def fell_asleep(name: str, when: float | None = None) -> None:
    write_line(name, "asleep", f"{time.time() if when is None else when:.3f}")


def woke(name: str) -> None:
    """Not asleep any longer: woken, brought up, or put down by the user."""
    try:
        os.remove(_path(name, "asleep"))
    except OSError:
        pass


# What a dev server writes by itself, under a worktree: a change there is not a person's.
OUTPUT_DIRS = frozenset({".git", "node_modules", ".vite", ".next", ".nuxt", ".svelte-kit", ".turbo", ".parcel-cache",
                         ".cache", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist",
                         "out", ".output", "coverage", "target", ".angular", ".expo", ".webpack", "tmp", ".tox",
                         ".venv", "venv"})
SCAN_LIMIT = 50_000  # entries looked at; a tree bigger than this counts as changed (its owner is busy)


def changed_since(worktree: str, since: float, skip: frozenset[str] = OUTPUT_DIRS) -> float | None:
    """The newest mtime after `since` of a file or folder in the worktree, outside what dev servers
    write (`skip`), or None when nothing changed. Follows no link; bounded by SCAN_LIMIT."""
    newest: float | None = None
    seen = 0
    stack = [worktree]
    while stack:
        folder = stack.pop()
        try:
            entries: Iterator[os.DirEntry[str]] = os.scandir(folder)
        except OSError:
            continue
        with entries as found:  # type: ignore[attr-defined]
            for entry in found:
                seen += 1
                if seen > SCAN_LIMIT:
                    return time.time()
                if entry.name in skip:
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if info.st_mtime > since and (newest is None or info.st_mtime > newest):
                    newest = info.st_mtime
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return None if newest is None else min(newest, time.time())  # a file dated ahead keeps nothing awake
