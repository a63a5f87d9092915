"""`git dual rm`: a worktree goes, as `git worktree remove` takes it, and its container and volumes with it."""

from __future__ import annotations

from dualgit.cli.commands._context import for_each
from dualgit.engine.dockerpy import DockerPy
from dualgit.git import repository
from dualgit.worktrees import engines
from dualgit.worktrees.inventory import list_containers, remove
from dualgit.worktrees.reconcile import removed
from dualgit.worktrees.targets import reconciled, worktree_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.engine.interface import Engine


def rm(targets: list[str] | None = None, force: bool = False) -> int:
    """Remove worktrees (as `git worktree remove` would, dirty ones refused without --force) and their
    containers and volumes."""
    repo, api, _containers = reconciled(targets[0] if targets else None, api=engines.client(DockerPy))
    return for_each(targets, lambda target: _remove(repo, api, worktree_for(repo, target), force))


def _remove(repo: repository.Repo, api: Engine, wt: repository.Worktree, force: bool) -> None:
    repository.remove_worktree(wt, force)
    for container in list_containers(api, repo.common_dir, wt.path):
        remove(api, container, volumes=True)
        removed(container)
        print(f"{wt.label}: removed {wt.path} and container {container.name}")
        break
    else:
        print(f"{wt.label}: removed {wt.path}")
