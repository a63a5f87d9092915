"""`git dual up` and `git dual down`."""

from __future__ import annotations

from dualgit import git
from dualgit.commands._context import for_each, reconciled, targeted, worktree_for
from dualgit.containers import Container, ensure_running, remove, stop
from dualgit.dockerapi import DockerAPI
from dualgit.errors import DualgitError


def describe(branch: str, container: Container) -> str:
    ports = ", ".join(f":{p} -> {host}" for p, host in container.ports.items())
    return f"{branch}: {container.name} {container.state}" + (f" ({ports})" if ports else "")


def up(target: str | None = None, recreate: bool = False, setup: bool = False) -> int:
    _repo, api, wt, mine = targeted(target)
    if recreate:
        for container in mine:
            remove(api, container, volumes=False)
    container = ensure_running(wt.location, api=api)
    print(describe(wt.label, container))
    from dualgit.shims import ensure_for_worktree

    ensure_for_worktree(wt.path)
    if setup:
        from dualgit.setup_state import start_background

        start_background(wt.location, container.name, container.id, force=True)
        print("  setup started: `git dual logs -f` follows it")
    from dualgit.proxy.daemon import ensure_started
    from dualgit.proxy.routing import current

    if ensure_started():
        for row in current(api).urls(worktree=wt.path):
            print(f"  {row['url']}")
    return 0


def down(targets: list[str] | None = None, rm: bool = False, every: bool = False) -> int:
    """Stop (or remove) the containers of the worktrees named, or of every worktree with `every`."""
    if every and targets:
        raise DualgitError("name worktrees or give --all, not both", hint="`git dual down --all` stops every container here")
    repo, api, containers = reconciled(targets[0] if targets else None)
    if every:
        labels = {wt.path: wt.label for wt in git.worktrees(repo)}
        chosen = [c for c in containers if rm or c.state != "exited"]
        for container in chosen:
            _down(api, labels.get(container.worktree, container.worktree), container, rm)
        if not chosen:
            print("no container to stop" if not rm else "no container to remove")
        return 0

    def one(target: str | None) -> None:
        wt = worktree_for(repo, target)
        mine = [c for c in containers if c.worktree == wt.path]
        if not mine:
            raise DualgitError(f"{wt.label} ({wt.path}) has no container", hint="`git dual up` creates it")
        for container in mine:
            _down(api, wt.label, container, rm)

    return for_each(targets, one)


def _down(api: DockerAPI, label: str, container: Container, rm: bool) -> None:
    if rm:
        remove(api, container, volumes=False)
        print(f"{label}: {container.name} removed (the worktree's files are untouched)")
    else:
        stop(api, container)
        print(f"{label}: {container.name} stopped")
