"""`git dual gc` and `git dual rm`: containers go when their worktrees go."""

from __future__ import annotations

from dualgit import git
from dualgit.commands._context import reconciled, worktree_for
from dualgit.containers import list_containers, remove
from dualgit.dockerapi import DockerAPI
from dualgit.reconcile import reconcile, removed


def gc(dry_run: bool = False, quiet: bool = False, folder: str | None = None) -> int:
    repo = git.open_repo(folder)
    actions = reconcile(repo, DockerAPI(), dry_run=dry_run)
    if quiet:
        return 0
    for action in actions:
        print(("would " if dry_run else "") + action.describe())
    if not actions:
        print("nothing to do: every container has its worktree")
    return 0


def rm(target: str | None = None, force: bool = False) -> int:
    """Remove a worktree (as `git worktree remove` would, dirty ones refused without --force) and its
    container and volumes."""
    repo, api, _containers = reconciled(target)
    wt = worktree_for(repo, target)
    git.remove_worktree(wt, force)
    for container in list_containers(api, repo.common_dir, wt.path):
        remove(api, container, volumes=True)
        removed(container)
        print(f"{wt.label}: removed {wt.path} and container {container.name}")
        break
    else:
        print(f"{wt.label}: removed {wt.path}")
    return 0
