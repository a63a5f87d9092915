"""Flow control between two transports: when one side's write buffer fills, the other side stops
reading until it drains. Memory stays flat however fast one side sends and however slow the other
reads."""

from __future__ import annotations

import asyncio

HIGH_WATER = 256 * 1024


class Reader:
    """Pauses a transport's reading for as long as any reason holds, and resumes when none does."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reasons: set[str] = set()

    def attach(self, transport: asyncio.Transport) -> None:
        self.transport = transport  # uvloop's are not subclasses
        transport.set_write_buffer_limits(high=HIGH_WATER)
        if self.reasons:
            transport.pause_reading()

    def pause(self, reason: str) -> None:
        if not self.reasons and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self.reasons.add(reason)

    def resume(self, reason: str) -> None:
        self.reasons.discard(reason)
        if not self.reasons and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class Side(asyncio.Protocol):
    """What either side of a relayed connection (the client's, the upstream's) offers the other:
    bytes out, and the end of them."""

    __slots__ = ()
    transport: asyncio.Transport | None

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def send_eof(self) -> bool:
        """Half-close this side's writing, where its transport can: whether it did."""
        transport = self.transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
            return True
        return False
