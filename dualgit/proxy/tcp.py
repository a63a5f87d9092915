"""Raw TCP for `tcp_ports`: a stable host port per branch, piped byte for byte to the port Docker
published for the container."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import cast

from dualgit.proxy.flow import Reader
from dualgit.proxy.hosts import QUIET, Mark


class Pipe(asyncio.Protocol):
    """One side of a byte pipe; `peer` is the other side."""

    def __init__(self, mark: Mark = QUIET) -> None:
        self.mark = mark  # its branch's: bytes moving keep it awake
        self.reader = Reader()
        self.transport: asyncio.Transport | None = None
        self.peer: Pipe | None = None
        self.pending = bytearray()  # what arrived before the peer was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.reader.attach(transport)

    def data_received(self, data: bytes) -> None:
        self.mark.hot = True
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending += data
            if len(self.pending) > 1024 * 1024:
                self.reader.pause("peer-not-ready")

    def eof_received(self) -> bool:
        if self.peer is not None and self.peer.transport is not None and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
            return True  # half-close: keep reading the other way
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.reader.pause("peer-full")

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.reader.resume("peer-full")

    def join(self, other: Pipe) -> None:
        self.peer, other.peer = other, self
        for side in (self, other):
            if side.pending and side.peer and side.peer.transport:
                side.peer.transport.write(bytes(side.pending))
                side.pending.clear()
                side.reader.resume("peer-not-ready")


class TcpClient(Pipe):
    """A client of a `tcp_ports` listener: piped to 127.0.0.1 at the port `target()` gives (with the
    branch's mark), or closed when it gives None."""

    def __init__(self, target: Callable[[], Awaitable[tuple[int, Mark] | None]],
                 connections: set[asyncio.Transport]) -> None:
        super().__init__()
        self.target = target
        self.connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.connections.add(cast(asyncio.Transport, transport))
        asyncio.get_running_loop().create_task(self._connect())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.connections.discard(self.transport)
        super().connection_lost(exc)

    async def _connect(self) -> None:
        found = await self.target()
        try:
            if found is None:
                raise ConnectionRefusedError
            port, self.mark = found
            _, upstream = await asyncio.get_running_loop().create_connection(lambda: Pipe(self.mark), "127.0.0.1", port)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        if self.transport is None or self.transport.is_closing():
            if upstream.transport is not None:
                upstream.transport.close()
            return
        self.join(upstream)
