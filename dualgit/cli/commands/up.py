"""`git dual up`: a worktree's container, running, with its PATH shims and URLs."""

from __future__ import annotations

from dualgit.worktrees import agent
from dualgit.worktrees.containers import ensure_running
from dualgit.worktrees.inventory import Container, remove
from dualgit.worktrees.targets import targeted


def describe(branch: str, container: Container) -> str:
    ports = ", ".join(f":{p} -> {host}" for p, host in agent.own_ports(container).items())
    return f"{branch}: {container.name} {container.state}" + (f" ({ports})" if ports else "")


def up(target: str | None = None, recreate: bool = False, setup: bool = False) -> int:
    _repo, api, wt, mine = targeted(target)
    if recreate:
        for container in mine:
            remove(api, container, volumes=False)
    container = ensure_running(wt.location, api=api, say=True)
    print(describe(wt.label, container))
    from dualgit.shell.shims import ensure_for_worktree

    ensure_for_worktree(wt.path)
    if setup:
        from dualgit.worktrees.setup_state import start_background

        start_background(wt.location, container.name, container.id, force=True)
        print("  setup started: `git dual logs -f` follows it")
    from dualgit.proxy.daemon import engine_here, ensure_started
    from dualgit.proxy.hosts import current
    from dualgit.worktrees.engines import one

    if ensure_started(engine_here()):
        for row in current(one(container.name)).urls(worktree=wt.path):
            print(f"  {row['url']}")
    return 0
