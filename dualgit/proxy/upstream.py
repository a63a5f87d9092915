"""The upstream side of an HTTP connection through the proxy: one protocol object per connection to
a container's published port, lent to one client connection at a time and pooled between requests.
Response heads are read for their framing only (by llhttp for the common kind, `fast.py`); bodies
are relayed as they arrive."""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

from dualgit.chunked import BadChunk, Chunked
from dualgit.proxy.fast import DECLINED, ParserError, ResponseCount, ResponseEnd
from dualgit.proxy.flow import Reader, Side
from dualgit.proxy.hosts import QUIET, Backend, Mark
from dualgit.proxy.http import BadMessage, Framing, response_info
from dualgit.proxy.state import Spares


class Client(Protocol):
    """What an upstream connection asks of the client connection it serves (`relay.ClientConnection`)."""

    def is_connected(self) -> bool: ...

    def is_gone(self) -> bool: ...

    def is_pinned_to(self, up: Upstream) -> bool: ...

    def is_served_by(self, up: Upstream) -> bool: ...

    def connected(self) -> None: ...

    def send(self, data: bytes) -> None: ...

    def send_eof(self) -> bool: ...

    def pause_reading(self, reason: str) -> None: ...

    def resume_reading(self, reason: str) -> None: ...

    def response_done(self, reusable: bool) -> None: ...

    def switch_to_pipe(self) -> None: ...

    def send_again(self, backend: Backend, port: int, method: str, head: bytes) -> None: ...

    def upstream_failed(self, backend: Backend, why: str, started: bool, look_inside: bool = False) -> None: ...

    def upstream_closed(self, up: Upstream) -> None: ...

    def close(self) -> None: ...

    def close_after_response(self) -> None: ...


class BodyRelay:
    """Counts a body through, whatever its framing; says how much of each piece is its own."""

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self.remaining = framing.length
        self.chunks = Chunked() if framing.kind == "chunked" else None
        self.done = framing.kind == "none" or (framing.kind == "length" and framing.length == 0)

    def take(self, data: bytes | bytearray) -> int:
        """How many leading bytes of `data` belong to the body; sets `done` when it ended there."""
        kind = self.framing.kind
        if self.done:
            return 0
        if kind == "length":
            n = min(self.remaining, len(data))
            self.remaining -= n
            self.done = self.remaining == 0
            return n
        if kind == "chunked":
            assert self.chunks is not None
            try:
                n = self.chunks.feed(data)
            except BadChunk as exc:
                raise BadMessage(str(exc)) from None
            self.done = self.chunks.ended
            return n
        return len(data)  # "close": everything, until the connection ends


class Upstream(Side):
    __slots__ = ("client", "spares", "backend", "port", "method", "first_head", "transport", "reader", "buf", "state",
                 "body", "reusable", "started", "reused_head", "fast", "response_end", "count", "sent", "heard", "mark")

    def __init__(self, client: Client, spares: Spares, backend: Backend, port: int, method: str,
                 head: bytes, mark: Mark = QUIET) -> None:
        self.client: Client | None = client  # None while spare in the pool
        self.mark = mark  # its branch's activity mark, set as data comes (QUIET for hot-reload traffic)
        self.spares = spares  # the pool it goes back to between requests
        self.backend = backend
        self.port = port
        self.method = method
        self.first_head: bytes | None = head
        self.transport: asyncio.Transport | None = None
        self.reader = Reader()
        self.buf = bytearray()
        self.state = "head"  # head, body, pipe, done; or pinned (see `pin`)
        self.body: BodyRelay | None = None
        self.reusable = False
        self.started = False  # whether any byte of the current response reached the client
        self.reused_head: bytes | None = None  # a bodiless request sent on a kept-alive connection
        # Whether the current response is followed by llhttp (`fast.py`) rather than in Python: any
        # but a reply to HEAD, whose head may announce a body that never comes (the general path knows).
        self.fast = method != "HEAD"
        self.response_end = ResponseEnd()
        # While pinned: the responses followed, the requests sent, and `sent` when data last came
        self.count: ResponseCount | None = None
        self.sent = 0
        self.heard = 0

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self, "127.0.0.1", self.port)
        except OSError as exc:
            if self.client is not None:
                self.client.upstream_failed(self.backend, f"its port {self.port} refused the connection ({exc.strerror})",
                                            started=False, look_inside=True)

    def adopt(self, client: Client, backend: Backend, method: str, head: bytes, bodiless: bool,
              mark: Mark = QUIET) -> None:
        """Carry the next request, for this client (the same as before, or a new one from the pool)."""
        self.mark = mark
        if client is not self.client:
            self.client = client
            self.reader.reasons.discard("client-full")
            self.reader.resume("client-full")
        self.backend, self.method = backend, method
        self.state, self.started, self.reusable, self.body = "head", False, False, None
        self.reused_head = head if bodiless else None
        self.fast = method != "HEAD"
        assert self.transport is not None
        self.transport.write(head)

    def pin(self) -> None:
        """Between responses, bind this connection to its client's (`ClientConnection.pinned`): its plain
        GETs come straight here, and the responses go straight back, counted by llhttp. No state
        changes per request; the client leaves the pin for anything else (`unpin`)."""
        self.state, self.count, self.sent, self.heard = "pinned", ResponseCount(), 0, 0

    def pending(self) -> int:
        """While pinned: the requests sent whose responses have not ended."""
        return self.sent - self.count.finals if self.count is not None else 0

    def unpin(self) -> None:
        """Back to one request at a time, between responses."""
        self.state, self.count, self.reusable, self.fast = "done", None, True, False

    def park(self) -> None:
        self.client = None

    # what its client connection and the pool ask of it

    def is_connected(self) -> bool:
        return self.transport is not None

    def is_open(self) -> bool:
        transport = self.transport
        return transport is not None and not transport.is_closing()

    def reusable_for(self, port: int) -> bool:
        """Whether the next request to `port` can go on this connection."""
        return self.port == port and self.reusable and self.is_open()

    def returnable(self) -> bool:
        """Whether it can wait in the pool: between responses, and kept alive."""
        return self.state == "done" and self.reusable and self.is_open()

    def between_responses(self) -> bool:
        return self.state == "done"

    def pool_port(self) -> int:
        return self.port

    def settle(self) -> None:
        """Its client lets go: a pin with no response under way is left."""
        if self.state == "pinned" and not self.pending():
            self.unpin()

    def forward(self, head: bytes) -> bool:
        """While pinned: send a plain GET straight on. False when the connection is closing."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(head)
        self.sent += 1
        self.reused_head = head
        return True

    def requests_sent(self) -> int:
        """While pinned: how many requests went out on the pin."""
        return self.sent

    def pause_reading(self, reason: str) -> None:
        self.reader.pause(reason)

    def resume_reading(self, reason: str) -> None:
        self.reader.resume(reason)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.reader.attach(transport)
        if self.client is None or self.client.is_gone():
            transport.close()
            return
        assert self.first_head is not None
        transport.write(self.first_head)
        self.first_head = None
        self.client.connected()

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause_reading("upstream-full")

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume_reading("upstream-full")

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None or not client.is_connected():
            self.close()  # a spare pooled connection has nothing to say
            return
        self.mark.hot = True
        if self.state == "pinned":
            self.heard = self.sent
            count = self.count
            assert count is not None
            try:
                count.parser.feed_data(data)
            except DECLINED as exc:  # bad framing, or a protocol switch that no request asked for
                self.started = True
                self._broken(f"it sent invalid HTTP ({exc})")
                return
            client.send(data)
            if count.finals >= self.sent:  # all asked is answered
                if count.finals > self.sent:
                    self.started = True
                    self._broken("it sent a response that no request asked for")
                elif not client.is_pinned_to(self):  # the client left the pin and waits for this
                    self.unpin()
                    client.response_done(True)
            return
        if self.state == "done":
            self.close()  # bytes between responses answer nothing: this connection is not to be trusted
            return
        if self.fast:
            # The hot path: the response followed by llhttp and relayed as it comes. A head that is
            # not the common kind (kept alive, framed by length or chunks) goes to the general path.
            if self.state == "head":
                started = self.response_end.start(data)
                if started is not None:
                    ended, self.started, self.reusable, self.state = started, True, True, "body"
                else:
                    ended, self.fast = False, False
            else:
                try:
                    ended = self.response_end.more(data)
                except ParserError as exc:
                    self._broken(f"it sent invalid HTTP ({exc})")
                    return
            if self.fast:
                client.send(data)
                if ended:
                    self.state = "done"
                    client.response_done(True)
                return
        if self.state == "pipe":
            client.send(data)
            return
        if self.state == "body" and not self.buf and self.body is not None and self.body.framing.kind == "length":
            n = self.body.take(data)  # the common case, a counted body: no copies
            client.send(data if n == len(data) else data[:n])
            if self.body.done:
                self._finished()
            return
        self.buf += data
        out = bytearray()  # one write per arrival: each write is a system call
        try:
            self._parse(out)
        finally:
            if out and self.client is not None:
                self.client.send(bytes(out))
        if self.state == "done":
            self._finished()

    def _parse(self, out: bytearray) -> None:
        while self.buf and self.state in ("head", "body"):
            if self.state == "head":
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > 64 * 1024:
                        self._broken("its response head is over 64 KiB")
                    return
                raw = bytes(self.buf[: end + 4])
                del self.buf[: end + 4]
                try:
                    status, framing, alive = response_info(raw, self.method)
                except BadMessage as exc:
                    self._broken(f"it sent invalid HTTP ({exc})")
                    return
                out += raw
                self.started = True
                if status == 101:
                    self.state = "pipe"
                    out += self.buf
                    self.buf.clear()
                    assert self.client is not None
                    self.client.switch_to_pipe()
                    return
                if 100 <= status < 200:
                    continue  # 100 Continue and friends: the real response follows
                self.reusable = alive and framing.kind != "close"
                self.body = BodyRelay(framing)
                self.state = "done" if self.body.done else "body"
            else:
                assert self.body is not None
                n = self.body.take(self.buf)
                out += self.buf[:n]
                del self.buf[:n]
                if self.body.done:
                    self.state = "done"
                elif n == 0:
                    return

    def _finished(self) -> None:
        self.state = "done"
        self.buf.clear()  # bytes after a complete response are a protocol error; drop them
        if self.client is not None:
            self.client.response_done(self.reusable)

    def _broken(self, why: str) -> None:
        self.close()
        if self.client is not None:
            self.client.upstream_failed(self.backend, why, self.started)

    def eof_received(self) -> bool:
        if self.state == "pipe" and self.client is not None:
            return self.client.send_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is None:
            self.spares.forget(self)
            return
        if not self.client.is_served_by(self):
            return
        if self.state == "pinned":
            self._lost_pinned()
            return
        if self.state == "pipe":
            self.client.close()
        elif self.state == "body" and self.body is not None and self.body.framing.kind == "close":
            self.reusable = False
            self.client.close_after_response()
            self._finished()
        elif self.state == "head" and not self.started and self.reused_head is not None:
            self.client.send_again(self.backend, self.port, self.method, self.reused_head)
        elif self.state in ("head", "body") and not self.started:
            self.client.upstream_failed(self.backend, "the connection closed before any response", False, look_inside=True)
        elif self.state in ("head", "body"):
            self.client.upstream_failed(self.backend, "the response was cut short", True)

    def _lost_pinned(self) -> None:
        client = self.client
        assert client is not None
        pending = self.pending()
        client.upstream_closed(self)
        if not pending:
            return  # closed between responses (the server's keep-alive timeout): the next request takes another
        if pending == 1 and self.heard != self.sent and self.reused_head is not None:
            client.send_again(self.backend, self.port, "GET", self.reused_head)  # not a byte of its response came
            return
        client.upstream_failed(self.backend, "the response was cut short", started=True)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
