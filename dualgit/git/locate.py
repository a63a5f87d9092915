"""Find the worktree that holds a folder, reading git's files directly (no subprocess).

This is what the hot paths use; `repository.py` builds the worktree list on it.
"""

from __future__ import annotations

import os

from dualgit.errors import DualgitError

GUARD = "DUALGIT_RUNNING"  # set when dualgit runs git, so that its own hooks stand aside


class Location:
    """Where a worktree is."""

    __slots__ = ("worktree", "gitdir", "common_dir")

    def __init__(self, worktree: str, gitdir: str, common_dir: str) -> None:
        self.worktree = worktree  # the worktree's root, absolute and resolved
        self.gitdir = gitdir  # its admin dir: `.git` for the main worktree, `.git/worktrees/<id>` for a linked one
        self.common_dir = common_dir  # the repository's shared git dir

    def _key(self) -> tuple[str, str, str]:
        return (self.worktree, self.gitdir, self.common_dir)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Location(worktree=%r, gitdir=%r, common_dir=%r)" % self._key()


def not_a_repo(folder: str) -> DualgitError:
    return DualgitError(
        f"{folder} is not inside a git repository",
        hint="cd into a git worktree, or create one with `git init`",
    )


def common_dir_of(gitdir: str) -> str:
    try:
        with open(os.path.join(gitdir, "commondir")) as f:
            rel = f.read().strip()
    except FileNotFoundError:
        return gitdir
    return os.path.realpath(os.path.join(gitdir, rel))


def gitdir_of(dotgit: str) -> str | None:
    """The admin dir that a worktree's `.git` entry (a folder, or a `gitdir:` file) points to."""
    if os.path.isdir(dotgit):
        return dotgit
    try:
        with open(dotgit) as f:
            line = f.readline().strip()
    except OSError:
        return None
    if not line.startswith("gitdir:"):
        return None
    return os.path.realpath(os.path.join(os.path.dirname(dotgit), line[len("gitdir:"):].strip()))


def locate(folder: str | None = None) -> Location:
    start = os.path.realpath(folder if folder is not None else os.getcwd())
    current = start
    while True:
        dotgit = os.path.join(current, ".git")
        if os.path.lexists(dotgit):
            gitdir = gitdir_of(dotgit)
            if gitdir is not None:
                return Location(current, gitdir, common_dir_of(gitdir))
        parent = os.path.dirname(current)
        if parent == current:
            raise not_a_repo(start)
        current = parent


def registered(loc: Location) -> bool:
    """Whether git still knows this worktree and its folder is there: the main worktree's `.git`, or
    a linked one's admin dir under the common dir. `git worktree remove` deletes the folder, then
    the admin dir; a container is never made for a worktree half-way through that."""
    if not os.path.isdir(loc.worktree):
        return False
    if loc.gitdir == loc.common_dir:
        return os.path.isdir(loc.gitdir)
    return os.path.isfile(os.path.join(loc.gitdir, "gitdir"))


def hooks_dir(folder: str) -> str | None:
    """Where git looks for hooks when run in `folder` (`core.hooksPath` honoured, relative to the
    worktree), absolute; None when git cannot say. The one lookup, for the installer and the
    read-only mounts alike."""
    import subprocess

    try:
        result = subprocess.run(["git", "rev-parse", "--git-path", "hooks"], cwd=folder, capture_output=True,
                                text=True, env={**os.environ, GUARD: "1"}, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    found = result.stdout.strip()
    return os.path.realpath(os.path.join(folder, found)) if result.returncode == 0 and found else None


def read_head(gitdir: str) -> tuple[str | None, str]:
    """(branch, what HEAD says) read live from a worktree's admin dir; branch is None when detached."""
    try:
        with open(os.path.join(gitdir, "HEAD")) as f:
            head = f.read().strip()
    except OSError:
        return None, ""
    if head.startswith("ref:"):
        ref = head[4:].strip()
        return (ref.removeprefix("refs/heads/")), ref
    return None, head
