"""Bring containers in line with git's worktree list. Git has no hook for `git worktree remove`,
`prune` or `move`, so every dualgit run calls this with the one list call it makes anyway.

A container goes only when git no longer knows its worktree: a locked worktree, or one whose
folder sits on an unmounted drive, is still registered, so its container stays. A moved worktree
keeps its admin dir, so its container is made anew at the new path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dualgit.git import repository
from dualgit.worktrees import engines
from dualgit.worktrees.inventory import Container, list_containers, remove

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.engine.interface import Engine


@dataclass(frozen=True)
class Action:
    container: Container
    moved_to: str | None  # the worktree's new path after `git worktree move`

    def describe(self) -> str:
        if self.moved_to:
            return f"recreate {self.container.name}: worktree moved {self.container.worktree} -> {self.moved_to}"
        return f"remove {self.container.name}: worktree {self.container.worktree} is gone"


def plan(containers: list[Container], trees: list[repository.Worktree]) -> list[Action]:
    """Pure: which containers have lost their worktree, and which of those followed a move."""
    registered = {wt.path for wt in trees}
    housed = {c.worktree for c in containers}
    by_gitdir = {wt.gitdir: wt for wt in trees}
    actions = []
    for container in containers:
        if container.worktree in registered:
            continue
        moved = by_gitdir.get(container.gitdir)
        target = moved.path if moved is not None and moved.path not in housed else None
        actions.append(Action(container, target))
    return actions


def reconcile(
    repo: repository.Repo,
    api: Engine | None = None,
    containers: list[Container] | None = None,
    dry_run: bool = False,
    trees: list[repository.Worktree] | None = None,
) -> list[Action]:
    """`trees`, when given, must have been read after `containers` were listed."""
    api = api or engines.client()
    # Containers first, git second: a container is only ever made after git registered its
    # worktree, so nothing listed here can be younger than the git state read below.
    if containers is None:
        containers = list_containers(api, repo.common_dir)
    if trees is None:
        trees = repository.worktrees(repo)
    actions = plan(containers, trees)
    if dry_run:
        return actions
    by_path = {wt.path: wt for wt in trees}
    for action in actions:
        remove(api, action.container, volumes=True)  # caches too: they are keyed by the old path
        removed(action.container)
        if action.moved_to:
            from dualgit.worktrees.containers import ensure_running  # making one: config, plugins, the image

            ensure_running(by_path[action.moved_to].location, api=api)
    return actions


def removed(container: Container) -> None:
    """Tell plugins, and forget what the host kept for the container (`state.forget`)."""
    from dualgit.hookspecs import Context
    from dualgit.naming import repo_name
    from dualgit.plugins import plugins
    from dualgit.worktrees import state

    state.forget(container.name)
    main = os.path.dirname(container.repo) if os.path.basename(container.repo) == ".git" else None
    ctx = Context(container.repo, repo_name(container.repo), main, container.worktree, None, container.name, {})
    plugins().call("dualgit_container_removed", ctx=ctx)
