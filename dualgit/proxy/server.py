"""The proxy process: listeners that follow the containers, a host table that follows git.

The table comes from the engine (one list call at start and after each event on the engine's event
stream, no polling) and from git (each worktree's branch, re-read at most every 250 ms while
requests come). The common git dirs' `worktrees/` folders are watched so that a removed worktree
takes its container with it while nothing else runs.

The pieces, each in its room: `routes` (the host table and its lookups), `state` (what a connection
gets: `ServerState`), `relay` and `upstream` (the two sides of a connection), `diagnosis` (the 502
and 503 pages' reasons), `listeners` (the sockets, kept in step with the table), `watchers` (the
engine's events, the worktrees' folders) and `sleep` (idle branches). `Proxy` puts them together.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from dualgit.background import atomic_write
from dualgit.engine.dockerpy import DockerPy
from dualgit.engine.several import told
from dualgit.errors import DualgitError
from dualgit.proxy.diagnosis import Diagnosis
from dualgit.proxy.hosts import Mark
from dualgit.proxy.listeners import Listeners
from dualgit.proxy.routes import Routes
from dualgit.proxy.say import log
from dualgit.proxy.sleep import Sleeper
from dualgit.proxy.state import ServerState, Spares
from dualgit.proxy.watchers import watch_events, watch_worktrees
from dualgit.worktrees import engines, idle
from dualgit.worktrees.inventory import Container, list_all
from dualgit.worktrees.state import engine_of

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine


class Proxy:
    def __init__(self, api: Engine | None = None, head_timeout: float = 10.0, keepalive_timeout: float = 30.0,
                 max_connections: int = 8192, status_file: str | None = None, hot_path: bool = True) -> None:
        self.api = api or engines.several(DockerPy)  # every engine a branch is on, and any named later
        self.status_file = status_file
        self.routes = Routes(rebuilt=lambda: self.listeners.sync_tcp())
        self.spares = Spares()
        self.diagnosis = Diagnosis(self.api)
        self.sleeper = Sleeper(self)
        self.state = ServerState(self.routes, self.spares, self.sleeper, self.diagnosis, head_timeout,
                                 keepalive_timeout, max_connections, hot_path)
        self.listeners = Listeners(self.state, self.write_status)
        self.refreshing: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        self.engine_trouble: str | None = None  # what was said when the engine stopped answering

    # what the sleeper reads (`sleep.Host`)

    @property
    def containers(self) -> list[Container]:
        return self.routes.containers

    @property
    def marks(self) -> dict[str, Mark]:
        return self.routes.marks

    # the host table, from the engine

    async def refresh(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            containers = await loop.run_in_executor(None, list_all, self.api)
        except DualgitError as exc:
            self._engine_down(exc.message)
            return
        missing = getattr(self.api, "missing", {})
        if missing:  # another engine out of reach: its branches' hosts stay, as one engine's would
            self._engine_down("; ".join(told(name, said) for name, said in sorted(missing.items())))
            listed = {c.id for c in containers}
            containers += [c for c in self.routes.containers if c.id not in listed and engine_of(c.name) in missing]
        elif self.engine_trouble is not None:
            self.engine_trouble = None
            log("engine: answering again")
        self.routes.take(containers)
        await self.listeners.sync_http()
        self.write_status()

    def schedule_refresh(self) -> None:
        if self.refreshing is None or self.refreshing.done():
            self.refreshing = asyncio.get_running_loop().create_task(self._refresh_soon())

    async def _refresh_soon(self) -> None:
        await asyncio.sleep(0.05)  # a burst of events becomes one list call
        await self.refresh()

    def write_status(self) -> None:
        if not self.status_file:
            return
        listeners = self.listeners
        status = {"pid": os.getpid(), "http_ports": sorted(listeners.http), "tcp_ports": sorted(listeners.tcp),
                  "busy": {str(k): v for k, v in sorted(listeners.busy.items())},
                  "asleep": sorted(c.name for c in self.containers if c.state != "running"
                                   and idle.asleep_since(c.name) is not None),
                  "cap_exceeded": self.sleeper.said_over or None}
        atomic_write(self.status_file, json.dumps(status).encode())

    def _engine_down(self, message: str) -> None:
        """Said once when the engine stops answering (again only if the reason changes), not at every
        retry: an engine stopped for a day would otherwise fill the log. The host table known stays."""
        if message != self.engine_trouble:
            self.engine_trouble = message
            log(f"engine: {message}; trying again until it answers (the host table known is kept)")

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        await self.refresh()
        watch_events(self.api, self.stopping, loop, self.schedule_refresh, self._engine_down)
        watcher = loop.create_task(watch_worktrees(self.api, self.stopping, lambda: {c.repo for c in self.containers}))
        clocks = loop.create_task(self.sleeper.run())
        if ready is not None:
            ready()
        await self.stopping.wait()
        watcher.cancel()
        clocks.cancel()
        self.listeners.close()
        for transport in list(self.state.connections):
            transport.close()


def raise_fd_limit() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (about 2x the throughput here), else the standard loop."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


