"""HTTP/1.1 through the proxy: one protocol object per client connection (its upstream side is in
`upstream.py`).

Each request head is parsed (to resolve its Host and add X-Forwarded-*), bodies are relayed as they
arrive, counted or followed through their chunk framing, and a `101 Switching Protocols` turns the
pair into a plain byte pipe (WebSocket). Invalid HTTP gets 400 and the connection closes.

The hot path: once a response on a kept-alive connection has ended, the connection is pinned to its
upstream connection. A plain GET to the same host (`fast.py`: one regular expression) then goes
straight out, plus X-Forwarded-*, and the responses come straight back, counted by llhttp
(`Upstream.pin`). Anything else leaves the pin, once the responses under way are through.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, cast

from dualgit.proxy import pages
from dualgit.proxy.fast import plain_get
from dualgit.proxy.flow import Reader, Side
from dualgit.proxy.hosts import QUIET, Backend
from dualgit.proxy.http import (
    HOP_BY_HOP,
    MAX_HEAD,
    BadMessage,
    Framing,
    Head,
    HeadCheck,
    keep_alive,
    parse_request,
    render_head,
    request_framing,
    simple_response,
)
from dualgit.proxy.say import log
from dualgit.proxy.sleep import HOLD_FOR, navigation, quiet
from dualgit.proxy.upstream import BodyRelay, Upstream

if TYPE_CHECKING:
    from dualgit.proxy.state import ServerState

BACKLOG = 64 * 1024  # pipelined bytes held while a response is under way, before reading pauses
NO_BODY = BodyRelay(Framing("none"))  # done from the start, so never changed: one serves every bodiless request


class ClientConnection(Side):
    __slots__ = ("server", "routes", "port", "loop", "transport", "reader", "buf", "state", "timer", "timer_at",
                 "deadline", "peer_ip", "upstream", "body", "keep_alive", "method", "local_reply", "advancing",
                 "fast_head", "fast_generation", "fast_suffix", "pinned", "keepalive_mark", "mark", "head_check")

    def __init__(self, server: ServerState, port: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.server = server  # what a connection gets of the server (`state.ServerState`), not the server
        self.routes = server.routes
        self.port = port
        self.loop = loop or asyncio.get_running_loop()  # given by the listener: each ask is a getpid() call
        self.transport: asyncio.Transport | None = None
        self.reader = Reader()
        self.buf = bytearray()
        self.state = "head"  # head, body, discard, response, pipe, closed
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0  # when the pending timer fires
        self.deadline: float | None = None  # when the current wait (for a head, or the next request) ends
        self.peer_ip = "127.0.0.1"
        self.upstream: Upstream | None = None
        self.body: BodyRelay | None = None
        self.keep_alive = True
        self.method = "GET"
        self.local_reply: bytes | None = None  # a page to send once the request body is read
        self.advancing = False
        # The fast path: set once a request went to a backend; valid while the host table is unchanged.
        self.fast_head: re.Pattern[bytes] | None = None  # matches a plain GET to that request's Host
        self.fast_generation = -1  # the host table it was resolved against
        self.fast_suffix = b""  # the X-Forwarded-* lines for it, and the blank line that ends a head
        # The upstream this connection is pinned to (`Upstream.pin`): while set, plain GETs to that host
        # go straight to it, and the state here stays "head".
        self.pinned: Upstream | None = None
        self.keepalive_mark = 0  # the pinned upstream's `sent` when the keep-alive timer last looked
        self.mark = QUIET  # the current request's branch's activity mark (QUIET for hot-reload traffic)
        self.head_check: HeadCheck | None = None  # while a head arrives in pieces

    # connection events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.reader.attach(transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer_ip = str(peer[0])
        if not self.server.admit(transport):
            transport.write(simple_response(503, "Service Unavailable", pages.message(
                "Too many connections", "The proxy has as many connections as it allows; try again."), close=True))
            transport.close()
            self.state = "closed"
            return
        self._arm_timer(self.server.head_timeout())

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = "closed"
        self.pinned = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.server.release(self.transport)
        self._release_upstream()

    def _release_upstream(self) -> None:
        """An upstream between responses goes back to the pool; one mid-response is closed."""
        up, self.upstream = self.upstream, None
        if up is None:
            return
        up.settle()
        if up.returnable():
            self.server.spares.give(up)
        else:
            up.close()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading("client-full")

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading("client-full")

    # what its upstream connection asks of it

    def is_connected(self) -> bool:
        return self.transport is not None

    def is_gone(self) -> bool:
        return self.state == "closed"

    def is_pinned_to(self, up: Upstream) -> bool:
        return self.pinned is up

    def is_served_by(self, up: Upstream) -> bool:
        return self.upstream is up

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def close_after_response(self) -> None:
        self.keep_alive = False

    def upstream_closed(self, up: Upstream) -> None:
        """Its upstream connection closed: neither pinned nor carrying a request any longer."""
        if self.pinned is up:
            self.pinned = None
        if self.upstream is up:
            self.upstream = None

    def pause_reading(self, reason: str) -> None:
        self.reader.pause(reason)

    def resume_reading(self, reason: str) -> None:
        self.reader.resume(reason)

    def data_received(self, data: bytes) -> None:
        up = self.pinned
        if up is not None:
            # The hot path: a plain GET to the same host as the last request, under the same host table,
            # forwarded as it came plus X-Forwarded-*; the response comes back on its own.
            assert self.fast_head is not None
            if (self.fast_head.fullmatch(data) is not None and self.fast_generation == self.routes.generation()
                    and up.forward(data[:-2] + self.fast_suffix)):
                return
            self._unpin(up)
        if self.state == "pipe":
            if self.upstream is not None:
                self.mark.hot = True
                self.upstream.send(data)
            return
        self.buf += data
        self._advance()
        if len(self.buf) > BACKLOG and self.state == "response":
            self.reader.pause("backlog")  # pipelined requests pile up while a response is under way

    def _unpin(self, up: Upstream) -> None:
        """Something other than a plain GET to the pinned host: the general path takes it, once the
        responses under way are through (the upstream then calls `response_done`)."""
        self.pinned = None
        if up.pending():
            self.state, self.deadline = "response", None  # what comes waits in buf
        else:
            up.unpin()

    def eof_received(self) -> bool:
        if self.state == "pipe" and self.upstream is not None and self.upstream.send_eof():
            return True
        up = self.pinned
        if self.state == "head" and not self.buf and (up is None or not up.pending()):
            return False  # a kept-alive connection between requests closed: nothing more to do
        if self.state == "head" and self.buf and up is None:  # what is in buf is never a whole head
            self._fail(400, "Bad Request", "the client closed its side in the middle of the request head")
            return False
        self.keep_alive = False  # half-closed: answer what was asked, then close
        if up is not None:
            self._unpin(up)
        return True

    # the request side

    def _advance(self) -> None:
        if self.advancing:
            return  # the loop below is already running further up the stack; it picks up the new state
        self.advancing = True
        try:
            self._advance_loop()
        except BadMessage as exc:  # a malformed head, length or chunk: 400 and a close, wherever it was met
            self._fail(400, "Bad Request", str(exc))
        finally:
            self.advancing = False

    def _advance_loop(self) -> None:
        while self.state != "closed":
            if self.state == "head":
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if self.buf[:1] == b"\x16":  # a TLS record: https:// typed for an http port
                        self._tls_here()
                        return
                    if len(self.buf) > MAX_HEAD:
                        self._fail(431, "Request Header Fields Too Large", "the request head is over 16 KiB")
                        return
                    if self.head_check is None:
                        self.head_check = HeadCheck()
                    self.head_check.feed(self.buf)  # a malformed start is refused now, not at the timeout
                    return
                if end + 4 > MAX_HEAD:
                    self._fail(431, "Request Header Fields Too Large", "the request head is over 16 KiB")
                    return
                raw = bytes(self.buf[: end + 4])
                del self.buf[: end + 4]
                self.head_check = None
                self._cancel_timer()
                self._request(parse_request(raw))
            elif self.state in ("body", "discard"):
                if not self._relay_body():
                    return
            else:
                return

    def _request(self, head: Head, gave_up: bool = False) -> None:
        method, _target, version = head.start
        self.method = method
        connection = head.tokens("connection")
        self.keep_alive = keep_alive(head, connection)
        framing = request_framing(head)
        self.body = NO_BODY if framing.kind == "none" else BodyRelay(framing)
        host = head.get("host")
        if host is None:
            if version == "HTTP/1.1":
                raise BadMessage("HTTP/1.1 request without Host")
            host = "localhost"
        resolution = self.routes.resolve(host, self.port)
        if resolution.kind == "forbidden":
            self._reply(403, "Forbidden", pages.message("Forbidden", f"{resolution.reason}: the proxy answers "
                        "localhost, *.localhost, 127.0.0.1 and [::1] only."), close=True)
            return
        if resolution.kind == "index":
            serving = self.routes.serving(self.port)
            self._reply(200, "OK", pages.index(serving, self.port, self.server.sleeper.sleeping(serving)))
            return
        if resolution.kind == "not-found" or resolution.backend is None:
            self._reply(404, "Not Found", pages.not_found(resolution.reason, resolution.candidates, self.port,
                                                          self.server.sleeper.sleeping(resolution.candidates)))
            return
        backend = resolution.backend
        if (not backend.running or self.server.sleeper.going) and self.server.sleeper.asleep(backend):
            self._asleep(head, backend, gave_up)
            return
        published = self.routes.upstream_port(backend, self.port) if backend.running else None
        if published is None:  # its page waits for the engine's word on why (its memory cap?)
            self.upstream_failed(backend, f"the container is {backend.container.state}", False, look_inside=True)
            return
        # Hop-by-hop headers stay on this hop: the upstream connection's life is the proxy's
        # business (pooled), except for an Upgrade, which must reach the server.
        upgrade = "upgrade" in connection and head.get("upgrade") is not None
        drop = HOP_BY_HOP if not upgrade else HOP_BY_HOP - {"connection", "upgrade"}
        headers = [(k, v) for k, v in head.headers if k.lower() not in drop]
        forwarded_for = head.get("x-forwarded-for")
        forwarded = [("X-Forwarded-For", f"{forwarded_for}, {self.peer_ip}" if forwarded_for else self.peer_ip)]
        if head.get("x-forwarded-proto") is None:
            forwarded.append(("X-Forwarded-Proto", "http"))
        if head.get("x-forwarded-host") is None:
            forwarded.append(("X-Forwarded-Host", host))
        self.state = "body"
        self.mark = QUIET if quiet(head) else backend.mark
        self._send_upstream(backend, published, render_head(head.start, headers + forwarded))
        self.fast_head = None
        if self.keep_alive and len(forwarded) == 3 and forwarded_for is None and self.server.pins():
            # the next plain GET to this host takes the hot path: the same X-Forwarded-* lines
            self.fast_head, self.fast_generation = plain_get(host.encode("latin-1")), self.routes.generation()
            self.fast_suffix = "".join(f"{k}: {v}\r\n" for k, v in forwarded).encode("latin-1") + b"\r\n"

    def _asleep(self, head: Head, backend: Backend, gave_up: bool) -> None:
        """A request for a branch that sleeps: it wakes the branch, unless it is hot-reload traffic.
        A page load gets the waking page at once; anything else is held until the branch answers."""
        sleeper = self.server.sleeper
        if gave_up or quiet(head):  # held for HOLD_FOR in vain, or a probe that must not wake it
            if not gave_up:
                sleeper.probe_refused(backend)
            self._waking_reply(backend, "still waking", quiet=not gave_up)
            return
        answer = sleeper.wake(backend)
        if navigation(head):
            self._waking_reply(backend, "waking")
            return
        self.state = "waking"
        self.reader.pause("waking")
        self.loop.create_task(self._held(head, answer))

    async def _held(self, head: Head, answer: asyncio.Future[bool]) -> None:
        try:
            woke = await asyncio.wait_for(asyncio.shield(answer), HOLD_FOR)
        except TimeoutError:
            woke = False
        if self.state != "waking":
            return  # the client went meanwhile
        self.reader.resume("waking")
        self.state = "head"
        try:
            self._request(head, gave_up=not woke)  # not awake in time: a 503 that says so
        except BadMessage as exc:
            self._fail(400, "Bad Request", str(exc))
        self._advance()

    def _waking_reply(self, backend: Backend, doing: str, quiet: bool = False) -> None:
        page = pages.message("asleep", f"{backend.branch_name} is asleep") if quiet else pages.waking(backend, self.port, doing)
        self.local_reply = simple_response(503, "Service Unavailable", page,
                                           close=not self.keep_alive, extra=[("Retry-After", "1")])
        self.state = "discard"

    def _send_upstream(self, backend: Backend, port: int, head: bytes) -> None:
        bodiless = self.body is not None and self.body.done
        up = self.upstream
        if up is None or not up.reusable_for(port):
            self._release_upstream()
            up = cast("Upstream | None", self.server.spares.take(port))
            if up is None:
                self.upstream = Upstream(self, self.server.spares, backend, port, self.method, head, self.mark)
                self.reader.pause("connecting")
                self.loop.create_task(self.upstream.connect())
                return
            self.upstream = up
        up.adopt(self, backend, self.method, head, bodiless, self.mark)

    def send_again(self, backend: Backend, port: int, method: str, head: bytes) -> None:
        """A bodiless request whose kept-alive upstream connection closed before answering it (the
        server's keep-alive timeout, just as the request went out), on another connection."""
        self.upstream = None
        self.state, self.method, self.body, self.deadline = "response", method, NO_BODY, None
        self._send_upstream(backend, port, head)

    def connected(self) -> None:
        self.reader.resume("connecting")
        self._advance()

    def _relay_body(self) -> bool:
        """Move body bytes on (or drop them, for a local page). False when more must arrive."""
        body = self.body
        assert body is not None
        up = self.upstream
        if self.state == "body" and (up is None or not up.is_connected()):
            return False  # still connecting; the bytes wait in buf
        if not body.done:
            if not self.buf:
                return False
            n = body.take(self.buf)
            if self.state == "body" and n and up is not None:
                up.send(bytes(self.buf[:n]))
            del self.buf[:n]
            if not body.done:
                return False
        if self.state == "discard":
            if self.local_reply is None:
                return False  # the page waits for what the container says (`upstream_failed`)
            reply, self.local_reply = self.local_reply, None
            self._write_reply(reply)
        else:
            self.state = "response"
        return True

    # replies

    def _reply(self, status: int, reason: str, body: bytes, close: bool = False) -> None:
        if close:
            self.keep_alive = False
        self.local_reply = simple_response(status, reason, body, close=not self.keep_alive)
        self.state = "discard"

    def upstream_failed(self, backend: Backend, why: str, started: bool, look_inside: bool = False) -> None:
        """The upstream ended without a complete response (or never connected: this client may have
        gone meanwhile). With `look_inside`, the 502 page waits for what listens inside the container
        (`inside.py`) to say why; the request's body is read and dropped meanwhile."""
        if self.state == "closed" or self.transport is None or self.transport.is_closing():
            return  # this client is gone, or going
        if started:
            self.transport.close()
            return
        self.upstream = None
        self.keep_alive = False
        self.reader.resume("connecting")
        self.state, self.local_reply = "discard", None  # None: the page is not written yet
        if look_inside:
            self.loop.create_task(self._explain_bad_gateway(backend, why))
            if not (self.body is not None and self.body.done):
                self._advance()
            return
        self._give_bad_gateway(backend, why)

    async def _explain_bad_gateway(self, backend: Backend, why: str) -> None:
        answer = await self.server.diagnosis.why_nothing_answers(backend, self.port)
        if self.state == "discard" and self.local_reply is None:  # else the client went meanwhile
            self._give_bad_gateway(backend, *(answer or (why, "")))

    def _give_bad_gateway(self, backend: Backend, why: str, fix: str = "") -> None:
        doing = self.server.diagnosis.under_way(backend, self.port) if backend.running else ""  # a stopped one's is stale
        if doing:
            self.local_reply = simple_response(503, "Service Unavailable", pages.waiting(backend, self.port, doing),
                                               close=True, extra=[("Retry-After", "1")])
        else:
            self.local_reply = simple_response(502, "Bad Gateway", pages.bad_gateway(backend, self.port, why, fix),
                                               close=True)
        if self.body is not None and self.body.done:
            self._write_reply(self.local_reply)
        else:
            self._advance()

    def _write_reply(self, reply: bytes) -> None:
        if self.transport is None:
            return
        self.transport.write(reply)
        self.response_done(reusable=True)

    def response_done(self, reusable: bool) -> None:
        if self.transport is None or self.state == "closed":
            return
        if not self.keep_alive:
            self.state = "closed"
            self.transport.close()
            self._release_upstream()
            return
        if not reusable:
            self._release_upstream()
        self.state = "head"
        self.body = None
        self._arm_timer(self.server.keepalive_timeout() if not self.buf else self.server.head_timeout())
        up = self.upstream
        if reusable and not self.buf and self.fast_head is not None and up is not None and up.between_responses():
            self.pinned, self.keepalive_mark = up, 0
            up.pin()
        if self.reader.reasons:
            self.reader.resume("backlog")
        if self.buf:
            self._advance()

    def switch_to_pipe(self) -> None:
        """After 101: whatever the client sends from now on goes straight to the upstream."""
        self.state = "pipe"
        self._cancel_timer()
        if self.buf and self.upstream is not None:
            self.upstream.send(bytes(self.buf))
        self.buf.clear()
        self.reader.resume("backlog")

    def _tls_here(self) -> None:
        """A TLS handshake on an HTTP port: closed at once (a TLS client cannot read an HTTP answer),
        and said in the log, where whoever wonders why https:// fails looks."""
        log(f":{self.port}: a TLS handshake from {self.peer_ip} (https:// typed for an http:// URL?); closed. "
            f"The proxy speaks plain HTTP: use http://…localhost:{self.port}/")
        if self.transport is not None:
            self.transport.abort()
        self.state = "closed"

    def _fail(self, status: int, reason: str, why: str) -> None:
        if self.transport is not None and self.state != "closed":
            self.transport.write(simple_response(status, reason, pages.message(reason, why), close=True))
            self.transport.close()
        self.state = "closed"
        if self.upstream is not None:
            self.upstream.close()

    # slowloris: a head must arrive whole within head_timeout of its first byte

    def _arm_timer(self, seconds: float) -> None:
        """Set the deadline. One timer per connection checks it when due, so a request costs a float
        store rather than a timer made and cancelled."""
        loop = self.loop
        self.deadline = loop.time() + seconds
        if self.timer is not None and self.timer_at <= self.deadline:
            return  # the pending timer fires first, and re-arms for the rest
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timer_at = loop.call_at(self.deadline, self._timed_out), self.deadline

    def _cancel_timer(self) -> None:
        self.deadline = None

    def _timed_out(self) -> None:
        self.timer = None
        if self.deadline is None or self.state == "closed":
            return
        loop = self.loop
        if loop.time() < self.deadline:
            self.timer, self.timer_at = loop.call_at(self.deadline, self._timed_out), self.deadline
            return
        up = self.pinned
        if self.state == "head" and up is not None and (up.requests_sent() != self.keepalive_mark or up.pending()):
            self.keepalive_mark = up.requests_sent()  # pinned: requests went by since the last look, or one is under way
            self._arm_timer(self.server.keepalive_timeout())
            return
        if self.state == "head":
            if self.buf:
                self._fail(408, "Request Timeout", "the request head did not arrive in time")
            elif self.transport is not None:
                self.transport.close()
