"""`git dual gc` and `git dual rm`: containers go when their worktrees go."""

from __future__ import annotations

from dualgit import git
from dualgit.commands._context import for_each, reconciled, worktree_for
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


def rm(targets: list[str] | None = None, force: bool = False) -> int:
    """Remove worktrees (as `git worktree remove` would, dirty ones refused without --force) and their
    containers and volumes."""
    repo, api, _containers = reconciled(targets[0] if targets else None)
    return for_each(targets, lambda target: _remove(repo, api, worktree_for(repo, target), force))


def _remove(repo: git.Repo, api: DockerAPI, wt: git.Worktree, force: bool) -> None:
    git.remove_worktree(wt, force)
    for container in list_containers(api, repo.common_dir, wt.path):
        remove(api, container, volumes=True)
        removed(container)
        print(f"{wt.label}: removed {wt.path} and container {container.name}")
        break
    else:
        print(f"{wt.label}: removed {wt.path}")
