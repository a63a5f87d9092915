"""`git dual gc`: containers go when their worktrees go."""

from __future__ import annotations

from dualgit.engine.dockerpy import DockerPy
from dualgit.git import repository
from dualgit.worktrees.reconcile import reconcile


def gc(dry_run: bool = False, quiet: bool = False, folder: str | None = None) -> int:
    repo = repository.open_repo(folder)
    actions = reconcile(repo, DockerPy(), dry_run=dry_run)
    if quiet:
        return 0
    for action in actions:
        print(("would " if dry_run else "") + action.describe())
    if not actions:
        print("nothing to do: every container has its worktree")
    return 0
