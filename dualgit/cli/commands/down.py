"""`git dual down`: stop (or remove) containers; the worktrees' files stay."""

from __future__ import annotations

from dualgit.cli.commands._context import for_each
from dualgit.engine.dockerpy import DockerPy
from dualgit.errors import DualgitError
from dualgit.worktrees import engines, idle
from dualgit.worktrees.inventory import Container, remove, stop
from dualgit.worktrees.targets import listing, worktree_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.engine.interface import Engine


def down(targets: list[str] | None = None, rm: bool = False, every: bool = False) -> int:
    """Stop (or remove) the containers of the worktrees named, or of every worktree with `every`."""
    if every and targets:
        raise DualgitError("name worktrees or give --all, not both", hint="`git dual down --all` stops every container here")
    repo, api, containers, trees = listing(targets[0] if targets else None, api=engines.client(DockerPy))
    if every:
        labels = {wt.path: wt.label for wt in trees}
        chosen = [c for c in containers if rm or c.state != "exited" or idle.asleep_since(c.name) is not None]
        for container in chosen:
            _down(api, labels.get(container.worktree, container.worktree), container, rm)
        if not chosen:
            print("no container to stop" if not rm else "no container to remove")
        return 0

    def one(target: str | None) -> None:
        wt = worktree_for(repo, target, trees)
        mine = [c for c in containers if c.worktree == wt.path]
        if not mine:
            raise DualgitError(f"{wt.label} ({wt.path}) has no container", hint="`git dual up` creates it")
        for container in mine:
            _down(api, wt.label, container, rm)

    return for_each(targets, one)


def _down(api: Engine, label: str, container: Container, rm: bool) -> None:
    idle.woke(container.name)  # stopped by the user: not asleep, so no request wakes it; `up` does
    if rm:
        remove(api, container, volumes=False)
        print(f"{label}: {container.name} removed (the worktree's files are untouched)")
    else:
        stop(api, container)
        print(f"{label}: {container.name} stopped")
