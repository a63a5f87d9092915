"""The repository as git sees it: found by `locate` (or as a bare repository), its worktree list
read from git's own files, and git itself for the few porcelain actions (removing a worktree),
always with the guard that keeps our hooks quiet."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dualgit.errors import DualgitError
from dualgit.git.locate import GUARD, Location, common_dir_of, locate, not_a_repo, read_head
from dualgit.naming import repo_name

if TYPE_CHECKING:
    import subprocess


@dataclass(frozen=True)
class Worktree:
    path: str  # absolute, resolved
    gitdir: str  # its admin dir
    common_dir: str
    branch: str | None  # None when HEAD is detached
    head: str  # the ref, or the commit id when detached
    main: bool
    locked: bool

    @property
    def location(self) -> Location:
        return Location(self.path, self.gitdir, self.common_dir)

    @property
    def label(self) -> str:
        """The branch, or `(detached abc1234)`."""
        return self.branch if self.branch is not None else f"(detached {self.head[:7]})"


@dataclass(frozen=True)
class Repo:
    common_dir: str
    name: str
    workdir: str | None  # the worktree the lookup started from


def open_repo(folder: str | None = None) -> Repo:
    """The repository `folder` (here, by default) is in: a worktree of it, or its git dir."""
    start = os.path.realpath(folder or os.getcwd())
    try:
        loc = locate(start)
    except DualgitError:
        gitdir = _git_dir_around(start)
        if gitdir is None:
            raise not_a_repo(start) from None
        common = common_dir_of(gitdir)
        return Repo(common, repo_name(common), None)
    return Repo(loc.common_dir, repo_name(loc.common_dir), loc.worktree)


def _git_dir_around(folder: str) -> str | None:
    """`folder` or the nearest folder above it that is a git dir itself (a bare repository)."""
    current = folder
    while True:
        if os.path.isfile(os.path.join(current, "HEAD")) and all(
                os.path.isdir(os.path.join(current, sub)) for sub in ("objects", "refs")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def worktrees(repo: Repo) -> list[Worktree]:
    """The main worktree (unless bare) and every linked one, each with its branch read now. A
    linked worktree is registered while its admin dir says where it is, its folder there or not."""
    found = []
    main = _main_worktree(repo.common_dir)
    if main is not None:
        found.append(_worktree(main, repo.common_dir, repo.common_dir, main=True))
    admin = os.path.join(repo.common_dir, "worktrees")
    try:
        names = sorted(os.listdir(admin))
    except OSError:
        names = []
    for name in names:
        gitdir = os.path.join(admin, name)
        try:
            with open(os.path.join(gitdir, "gitdir")) as f:
                dotgit = f.read().strip()
        except OSError:
            continue
        if dotgit:
            found.append(_worktree(os.path.realpath(os.path.dirname(os.path.join(gitdir, dotgit))), gitdir,
                                   repo.common_dir, main=False))
    return found


def _main_worktree(common_dir: str) -> str | None:
    """Where the main worktree is, as git decides it: none when `core.bare` is true, else
    `core.worktree`, else the folder that holds a `.git` common dir."""
    core = _core_config(common_dir)
    if core.get("bare", "").lower() in ("true", "yes", "on", "1"):
        return None
    if core.get("worktree"):
        return os.path.realpath(os.path.join(common_dir, core["worktree"]))
    if os.path.basename(common_dir) == ".git":
        return os.path.dirname(common_dir)
    return None


def _core_config(common_dir: str) -> dict[str, str]:
    """The `[core]` keys of the repository's config file, lowercased, last one winning."""
    found: dict[str, str] = {}
    section = ""
    try:
        with open(os.path.join(common_dir, "config"), errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped[1:].split("]", 1)[0].strip().lower()
            stripped = stripped.split("]", 1)[1].strip() if "]" in stripped else ""
        if section != "core" or "=" not in stripped or stripped.startswith(("#", ";")):
            continue
        key, _, value = stripped.partition("=")
        value = value.split(" #", 1)[0].split(" ;", 1)[0].strip().strip('"')
        found[key.strip().lower()] = value
    return found


def _worktree(path: str, gitdir: str, common: str, main: bool) -> Worktree:
    branch, head = read_head(gitdir)
    locked = os.path.exists(os.path.join(gitdir, "locked"))
    return Worktree(path, gitdir, common, branch, head, main, locked)


def find_worktree(repo: Repo, target: str, trees: list[Worktree] | None = None) -> Worktree:
    """A worktree named by an existing path (or any folder inside it), else by its branch; among
    `trees` when the caller has read the list already."""
    trees = worktrees(repo) if trees is None else trees
    if os.path.exists(target):
        real = os.path.realpath(target)
        holding = [wt for wt in trees if real == wt.path or real.startswith(wt.path.rstrip("/") + "/")]
        if holding:
            return max(holding, key=lambda wt: len(wt.path))  # the innermost, for worktrees inside worktrees
    for wt in trees:
        if wt.branch == target:
            return wt
    known = ", ".join(w.label for w in trees)
    raise DualgitError(f"no worktree of {repo.name} at or on {target!r}", hint=f"known: {known}; see `git dual ls`")


def run_git(args: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    import subprocess  # for the porcelain actions only: `ls` and reconcile do without

    env = dict(os.environ, **{GUARD: "1"})
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def remove_worktree(wt: Worktree, force: bool) -> None:
    if wt.main:
        raise DualgitError(f"{wt.path} is the main worktree; git cannot remove it", hint="remove a linked worktree instead")
    if not force:
        from dualgit.git.library import dirty_files

        dirty = dirty_files(wt.path)
        if dirty:
            shown = ", ".join(dirty[:3]) + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else "")
            raise DualgitError(f"{wt.label} has changes git would lose: {shown}",
                               hint=f"commit or stash them, or `git dual rm --force {wt.label}` discards them")
    args = ["worktree", "remove", *(["--force"] if force else []), wt.path]
    result = run_git(args, wt.common_dir)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "git failed"
        reason = reason.removeprefix("fatal: ")
        raise DualgitError(
            f"git refused to remove {wt.path}: {reason}",
            hint=f"commit or stash its changes, or run `git dual rm --force {wt.path}` to discard them",
        )
