"""Where a request goes: the host table built from the engine's containers and git's branches, the
resolutions made under it, and the port each backend's requests take (the published one, or the
agent's relay to a server on loopback inside)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dualgit.proxy import hosts
from dualgit.proxy.hosts import HostTable, Mark, Resolution
from dualgit.worktrees import agent
from dualgit.worktrees.inventory import Container

HEAD_RECHECK = 0.25  # seconds between re-reads of the worktrees' HEAD files, while requests come
LISTEN_FOR = 1.0  # seconds a read of a container's `listen` file (the agent's) routes its requests


class Routes:
    def __init__(self, rebuilt: Callable[[], None] = lambda: None) -> None:
        self.containers: list[Container] = []
        self.branches: dict[str, str | None] = {}
        self.marks: dict[str, Mark] = {}  # each container's activity mark, by name (`sleep.py` reads them)
        self.table = HostTable()
        self.resolved: dict[tuple[str, int], Resolution] = {}  # cleared whenever the table changes
        # A connection may reuse a resolution made under the current generation without resolving it
        # again: it moves on with every table built, and when the branch reads grow old.
        self.table_generation = 0
        self.heads_expiry: asyncio.TimerHandle | None = None  # pending while the branch reads are fresh
        self.listeners: dict[str, tuple[float, dict[int, str]]] = {}  # the agent's `listen`, by container
        self.rebuilt = rebuilt  # told after each table built (the listeners follow it)

    def generation(self) -> int:
        """Bumped whenever the host table changes: a resolution made under an older one is stale."""
        return self.table_generation

    def serving(self, port: int) -> list[hosts.Backend]:
        """The branches that declare `port`, for the index page."""
        return self.table.serving(port)

    def resolve(self, host: str, port: int) -> Resolution:
        if self.heads_expiry is None:
            self._heads_read()
            branches = hosts.branches_of(self.containers)
            if branches != self.branches:
                self.branches = branches
                self.rebuild()
        key = (host, port)
        found = self.resolved.get(key)
        if found is None:
            found = self.table.resolve(host, port)
            if len(self.resolved) < 4096:  # Host headers are the client's to choose: keep this bounded
                self.resolved[key] = found
        return found

    def take(self, containers: list[Container]) -> None:
        """The engine's list, read anew: branches read now, and the table built from them."""
        self.containers = containers
        self.branches = hosts.branches_of(containers)
        self._heads_read()
        self.rebuild()

    def rebuild(self) -> None:
        self.table_generation += 1
        self.table = hosts.build(self.containers, self.branches, self.marks)
        self.resolved.clear()
        self.rebuilt()

    def _heads_read(self) -> None:
        """The branches were read now: hosts resolved from here on hold for HEAD_RECHECK."""
        if self.heads_expiry is not None:
            self.heads_expiry.cancel()
        self.heads_expiry = asyncio.get_running_loop().call_later(HEAD_RECHECK, self._heads_old)

    def _heads_old(self) -> None:
        self.heads_expiry = None
        self.table_generation += 1

    def upstream_port(self, backend: hosts.Backend, port: int) -> int | None:
        """The host port for `backend`'s `port`: Docker's published one, or, while the agent sees
        a server there on loopback only (`agent.listening`, read at most once a second), its relay's."""
        relayed = backend.relayed(port)
        if relayed is None:
            return backend.published(port)
        name, now = backend.container.name, asyncio.get_running_loop().time()
        seen = self.listeners.get(name)
        if seen is None or now > seen[0]:
            seen = (now + LISTEN_FOR, agent.listening(name))
            self.listeners[name] = seen
        return relayed if seen[1].get(port) == "loop" else backend.published(port)
