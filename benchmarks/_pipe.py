"""A reference, not a proxy: each connection piped byte for byte to one port, in Python on uvloop,
with no HTTP at all. What any asyncio proxy costs before it reads a request.

    python benchmarks/_pipe.py LISTEN_PORT TARGET_PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


class Pipe(asyncio.Protocol):
    def __init__(self, peer: Pipe | None = None) -> None:
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.peer is None:
            asyncio.get_running_loop().create_task(self.connect())
        else:
            self.peer.peer = self
            if self.peer.pending and self.transport is not None:
                self.transport.write(self.peer.pending)

    async def connect(self) -> None:
        await asyncio.get_running_loop().create_connection(lambda: Pipe(self), "127.0.0.1", int(sys.argv[2]))

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            if not self.peer.transport.is_closing():  # the other side may have closed already
                self.peer.transport.write(data)
        else:
            self.pending += data

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def main() -> None:
    server = await asyncio.get_running_loop().create_server(Pipe, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
