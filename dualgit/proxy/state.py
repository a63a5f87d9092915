"""What a connection gets of the proxy (uvicorn's `ServerState`): the live connections and their cap,
the timeouts, whether the hot path is on, the host table's lookups (`routes.Routes`), the pool of
spare upstream connections, the sleeper (wakes) and the 502/503 diagnosis. Not the whole server:
a connection can neither refresh the table nor open listeners."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from dualgit.proxy.diagnosis import Diagnosis
    from dualgit.proxy.routes import Routes
    from dualgit.proxy.sleep import Sleeper

SPARE_PER_PORT = 64  # pooled upstream connections kept per published port


class Pooled(Protocol):
    """What the pool asks of an upstream connection (`upstream.Upstream`)."""

    def is_open(self) -> bool: ...

    def pool_port(self) -> int: ...

    def park(self) -> None: ...

    def close(self) -> None: ...


class Spares:
    """Upstream connections between requests, by published port: a client that connects per
    request still reuses them."""

    __slots__ = ("by_port",)

    def __init__(self) -> None:
        self.by_port: dict[int, list[Pooled]] = {}

    def take(self, port: int) -> Pooled | None:
        stack = self.by_port.get(port)
        while stack:
            up = stack.pop()
            if up.is_open():
                return up
        return None

    def give(self, up: Pooled) -> None:
        stack = self.by_port.setdefault(up.pool_port(), [])
        if len(stack) >= SPARE_PER_PORT:
            up.close()
            return
        up.park()
        stack.append(up)

    def forget(self, up: Pooled) -> None:
        stack = self.by_port.get(up.pool_port(), [])
        if up in stack:
            stack.remove(up)


class ServerState:
    __slots__ = ("connections", "max_connections", "head_seconds", "keepalive_seconds", "hot_path", "routes",
                 "spares", "sleeper", "diagnosis")

    def __init__(self, routes: Routes, spares: Spares, sleeper: Sleeper, diagnosis: Diagnosis,
                 head_timeout: float, keepalive_timeout: float, max_connections: int, hot_path: bool) -> None:
        self.connections: set[asyncio.Transport] = set()
        self.max_connections = max_connections
        self.head_seconds = head_timeout  # for a request head to arrive whole
        self.keepalive_seconds = keepalive_timeout  # for a kept-alive connection's next request
        self.hot_path = hot_path  # pin kept-alive connections (`relay.py`); off only to measure or rule it out
        self.routes, self.spares, self.sleeper, self.diagnosis = routes, spares, sleeper, diagnosis

    def admit(self, transport: asyncio.Transport) -> bool:
        if len(self.connections) >= self.max_connections:
            return False
        self.connections.add(transport)
        return True

    def release(self, transport: asyncio.Transport) -> None:
        self.connections.discard(transport)

    def head_timeout(self) -> float:
        return self.head_seconds

    def keepalive_timeout(self) -> float:
        return self.keepalive_seconds

    def pins(self) -> bool:
        """Whether kept-alive connections take the hot path (`DUALGIT_PROXY_HOT_PATH=0`: never)."""
        return self.hot_path
