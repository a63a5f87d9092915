"""The repository as git sees it: pygit2 for discovery and the worktree list, git itself for the
few porcelain actions (removing a worktree), always with the guard that keeps our hooks quiet."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import pygit2

from dualgit.errors import DualgitError
from dualgit.git.locate import GUARD, Location, common_dir_of, not_a_repo, read_head
from dualgit.naming import repo_name


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
    start = os.path.realpath(folder or os.getcwd())
    found = pygit2.discover_repository(start)
    if found is None:
        raise not_a_repo(start)
    gitdir = os.path.realpath(found)
    common = common_dir_of(gitdir)
    repo = pygit2.Repository(gitdir)
    workdir = os.path.realpath(repo.workdir) if repo.workdir else None
    return Repo(common, repo_name(common), workdir)


def worktrees(repo: Repo) -> list[Worktree]:
    """The main worktree (unless bare) and every linked one, each with its branch read now."""
    common = pygit2.Repository(repo.common_dir)
    found = []
    if not common.is_bare and common.workdir:
        found.append(_worktree(os.path.realpath(common.workdir), repo.common_dir, repo.common_dir, main=True))
    for name in sorted(common.list_worktrees()):
        gitdir = os.path.join(repo.common_dir, "worktrees", name)
        try:
            wt_path = common.lookup_worktree(name).path
        except (pygit2.GitError, KeyError, ValueError):
            continue
        found.append(_worktree(os.path.realpath(wt_path), gitdir, repo.common_dir, main=False))
    return found


def _worktree(path: str, gitdir: str, common: str, main: bool) -> Worktree:
    branch, head = read_head(gitdir)
    locked = os.path.exists(os.path.join(gitdir, "locked"))
    return Worktree(path, gitdir, common, branch, head, main, locked)


def find_worktree(repo: Repo, target: str) -> Worktree:
    """A worktree named by an existing path (or any folder inside it), else by its branch."""
    trees = worktrees(repo)
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
    env = dict(os.environ, **{GUARD: "1"})
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def remove_worktree(wt: Worktree, force: bool) -> None:
    if wt.main:
        raise DualgitError(f"{wt.path} is the main worktree; git cannot remove it", hint="remove a linked worktree instead")
    args = ["worktree", "remove", *(["--force"] if force else []), wt.path]
    result = run_git(args, wt.common_dir)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "git failed"
        reason = reason.removeprefix("fatal: ")
        raise DualgitError(
            f"git refused to remove {wt.path}: {reason}",
            hint=f"commit or stash its changes, or run `git dual rm --force {wt.path}` to discard them",
        )
