"""`git dual gc`: containers go when their worktrees go."""

from __future__ import annotations

from dualgit.engine.dockerpy import DockerPy
from dualgit.git import repository
from dualgit.worktrees import engines
from dualgit.worktrees.inventory import listed, remove_service, remove_volumes
from dualgit.worktrees.reconcile import reconcile


def gc(dry_run: bool = False, quiet: bool = False, folder: str | None = None) -> int:
    repo = repository.open_repo(folder)
    api = engines.client(DockerPy)
    said = [action.describe() for action in reconcile(repo, api, dry_run=dry_run)]
    # services whose branch container went another way (`docker rm`), and whose worktree is gone too
    registered = {wt.path for wt in repository.worktrees(repo)}
    for found in listed(api, repo.common_dir):
        if found.worktree in registered:
            continue
        said.append(f"remove {found.name}: service {found.service} of worktree {found.worktree}, which is gone")
        if not dry_run:
            remove_service(api, found)
            remove_volumes(api, repo.common_dir, found.worktree)
    if quiet:
        return 0
    for line in said:
        print(("would " if dry_run else "") + line)
    if not said:
        print("nothing to do: every container has its worktree")
    return 0
