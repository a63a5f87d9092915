"""`git dual up` and `git dual down`."""

from __future__ import annotations

import os

from dualgit.commands._context import targeted
from dualgit.containers import Container, ensure_running, remove, stop
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
        from dualgit.setup import start_background

        start_background(wt.location, container.name, container.id, force=True)
        print("  setup started: `git dual logs -f` follows it")
    from dualgit.proxy.daemon import DISABLE_ENV, ensure_started
    from dualgit.proxy.routing import current

    if os.environ.get(DISABLE_ENV) != "0":
        ensure_started()
        for row in current(api).urls(worktree=wt.path):
            print(f"  {row['url']}")
    return 0


def down(target: str | None = None, rm: bool = False) -> int:
    _repo, api, wt, mine = targeted(target)
    if not mine:
        raise DualgitError(f"{wt.label} ({wt.path}) has no container", hint="`git dual up` creates it")
    for container in mine:
        if rm:
            remove(api, container, volumes=False)
            print(f"{wt.label}: {container.name} removed (the worktree's files are untouched)")
        else:
            stop(api, container)
            print(f"{wt.label}: {container.name} stopped")
    return 0
