"""What most commands (the command line's and the MCP server's) start from: the repository,
reconciled with the engine, and the worktree a command names."""

from __future__ import annotations

import os

from dualgit.git import repository
from dualgit.worktrees import engines
from dualgit.worktrees.inventory import Container, list_containers
from dualgit.worktrees.reconcile import reconcile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.engine.interface import Engine


def reconciled(target: str | None = None, listed: list[Container] | None = None, api: Engine | None = None,
               ) -> tuple[repository.Repo, Engine, list[Container]]:
    """Open the repository (the one `target` is in when it is a folder, else this one), reap
    containers whose worktree is gone, and return what is left. `listed`: every dualgit container,
    listed already (`list_all`), of which this repository's are taken, for one list call in all.
    `api`: the engine client (the lean one when not given)."""
    repo, api, containers, _trees = listing(target, listed, api)
    return repo, api, containers


def listing(target: str | None = None, listed: list[Container] | None = None, api: Engine | None = None,
            ) -> tuple[repository.Repo, Engine, list[Container], list[repository.Worktree]]:
    """`reconciled`, and the worktree list it was reconciled with (read once, after the containers)."""
    repo = repository.open_repo(target if target and os.path.isdir(target) else None)
    api = api or engines.client()
    containers = (list_containers(api, repo.common_dir) if listed is None
                  else [c for c in listed if c.repo == repo.common_dir])
    trees = repository.worktrees(repo)
    gone = reconcile(repo, api, containers, trees=trees)
    if gone:
        removed = {a.container.id for a in gone}
        containers = [c for c in containers if c.id not in removed]
        if any(a.moved_to for a in gone):
            containers = list_containers(api, repo.common_dir)
    return repo, api, containers, trees


def worktree_for(repo: repository.Repo, target: str | None,
                 trees: list[repository.Worktree] | None = None) -> repository.Worktree:
    return repository.find_worktree(repo, target or repo.workdir or ".", trees)


def targeted(target: str | None, api: Engine | None = None,
             ) -> tuple[repository.Repo, Engine, repository.Worktree, list[Container]]:
    """The worktree a command names (a path, a branch, or here), reconciled, with its containers."""
    repo, api, containers, trees = listing(target, None, api)
    wt = worktree_for(repo, target, trees)
    return repo, api, wt, [c for c in containers if c.worktree == wt.path]
