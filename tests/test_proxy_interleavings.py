"""The proxy's connection state machines (HTTP, and the raw TCP pipe's connect) under any order
of events: client bytes, upstream bytes, connects that succeed or are refused, half-closes and
closes, on either side.

The two protocol classes run as they are, on a real event loop; only the transports are stand-ins
that record what is written, and the loop's connect, which the test completes or refuses (the e2e
tests cover real sockets). Drawn at random: whatever the order, no callback raises (nor trips one
of the proxy's own asserts), nothing is written after a half-close (uvloop raises), and once the
client is gone every upstream connection is closed or pooled between responses; writes to a
closed transport are dropped, as the loops drop them. Written out, byte for byte: what the proxy
does at the edges that a socket test reaches only by luck of timing (a close that lands while a
connect is under way, a server's idle close racing a pooled connection's reuse, a half-close).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualgit.proxy import hosts
from dualgit.proxy.hosts import Mark
from dualgit.proxy.relay import BACKLOG, ClientConnection
from dualgit.proxy.server import Proxy
from dualgit.proxy.state import SPARE_PER_PORT
from dualgit.proxy.tcp import TcpClient
from dualgit.worktrees.inventory import Container

HOST = b"main.shop.localhost:3000"
REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST,
    b"GET /a HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\n\r\n" % HOST,
    b"GET / HTTP/1.1\r\nHost: other.shop.localhost:3000\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: nowhere.shop.localhost:3000\r\n\r\n",  # 404 page
    b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % HOST,
    b"HEAD / HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST,
    b"POST /p HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello" % HOST,
    b"POST /c HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" % HOST,
    b"GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" % HOST,
    b"GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % HOST,
    b"NOT HTTP AT ALL\r\n\r\n",
]
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframes",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ncut",
    b"garbage\r\n\r\n",
]


class Transport:
    """What a protocol sees of its socket. Closing it delivers connection_lost later, as a loop does."""

    def __init__(self, world: World, protocol: Any) -> None:
        self.world, self.protocol = world, protocol
        self.written: list[bytes] = []
        self.dropped: list[bytes] = []  # written after close
        self.closed = self.eof = False
        self.peer_eof = False  # the other end half-closed: it sends nothing more
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.eof, f"written after write_eof (uvloop raises): {bytes(data[:50])!r}"
        (self.dropped if self.closed else self.written).append(bytes(data))  # loops drop what comes after close

    def write_eof(self) -> None:
        if not self.closed:
            self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.world.lost.append(self)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class World:
    """One client connection, the upstream connections it makes, and the events still to happen."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        proxy = self.proxy = Proxy()
        shop = Container(id="a", name="dual-a", state="running", repo="/src/shop/.git", worktree="/w/a",
                         gitdir="/w/a/.git", spec="", image_id="", ports={"3000": "127.0.0.1:43000"},
                         http_ports=(3000,), tcp_ports=())
        other = Container(id="b", name="dual-b", state="running", repo="/src/shop/.git", worktree="/w/b",
                          gitdir="/w/b/.git", spec="", image_id="", ports={"3000": "127.0.0.1:43001"},
                          http_ports=(3000,), tcp_ports=())
        routes = proxy.routes
        routes.containers, routes.branches = [shop, other], {"/w/a": "main", "/w/b": "other"}
        routes.table = hosts.build(routes.containers, routes.branches)
        routes.heads_expiry = loop.call_later(3600, lambda: None)  # the branch reads stay fresh
        # what a look inside a container says, for 502 pages: when the test says it
        self.inside: asyncio.Future[tuple[str, str] | None] = loop.create_future()
        proxy.diagnosis.why_nothing_answers = lambda backend, port: self.inside  # type: ignore[method-assign,assignment,return-value]
        self.connecting: list[tuple[asyncio.Future[None], Any]] = []  # (result, protocol) of pending connects
        self.upstreams: list[Transport] = []
        self.lost: list[Transport] = []  # closed, connection_lost not yet delivered
        self.client = ClientConnection(proxy.state, 3000)
        self.client_transport = Transport(self, self.client)
        self.client.connection_made(self.client_transport)  # type: ignore[arg-type]

    async def create_connection(self, factory: Any, host: str, port: int) -> tuple[Transport, Any]:
        done: asyncio.Future[None] = self.loop.create_future()
        protocol = factory()
        self.connecting.append((done, protocol))
        await done  # raises when the test refuses it
        transport = Transport(self, protocol)
        self.upstreams.append(transport)
        protocol.connection_made(transport)
        return transport, protocol

    def deliver_lost(self) -> None:
        while self.lost:
            transport = self.lost.pop(0)
            transport.protocol.connection_lost(None)

    def another_client(self) -> tuple[ClientConnection, Transport]:
        client = ClientConnection(self.proxy.state, 3000)
        transport = Transport(self, client)
        client.connection_made(transport)  # type: ignore[arg-type]
        return client, transport

    async def connect(self) -> Transport:
        """The oldest pending connect succeeds: its upstream's transport."""
        await asyncio.sleep(0)
        self.connecting.pop(0)[0].set_result(None)
        await asyncio.sleep(0)
        return self.upstreams[-1]

    async def pinned(self) -> Transport:
        """A plain GET answered on a new upstream connection: the client is pinned to it from here."""
        self.client.data_received(REQUESTS[0])
        upstream = await self.connect()
        upstream.protocol.data_received(RESPONSES[0])
        assert self.client.pinned is upstream.protocol
        return upstream

    async def refuse(self) -> None:
        await asyncio.sleep(0)
        self.connecting.pop(0)[0].set_exception(ConnectionRefusedError(111, "Connection refused"))
        await asyncio.sleep(0)


def in_world(check: Callable[[World], Awaitable[None]]) -> None:
    """Run `check` against a new World, on a loop whose connects the World answers."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        world = World(loop)
        loop.create_connection = world.create_connection  # type: ignore[method-assign,assignment]
        await check(world)
        world.proxy.routes.heads_expiry.cancel()  # type: ignore[union-attr]

    asyncio.run(main())


Event = tuple[str, int, int]  # (kind, which request or response, where its bytes split in two; 0: whole)
# Weights towards the common path, so that runs reach pinned connections, pooled upstreams and
# upgrades often; only events that can happen next are drawn.
WEIGHT = {"client": 5, "upstream": 5, "connect": 3, "refuse": 1, "client-eof": 1, "client-gone": 1, "upstream-eof": 1,
          "upstream-gone": 1, "lost": 2}
PLAIN_FIRST = [0, 0, 0, 1]  # the plain GETs and 200s come up more often than the rest


def enabled(world: World) -> list[str]:
    peer, live = world.client_transport, [t for t in world.upstreams if not t.closed]
    kinds = []
    if not peer.closed and not peer.peer_eof:
        kinds += ["client", "client-eof"]
    if not peer.closed:
        kinds.append("client-gone")
    if live and not live[-1].peer_eof:
        kinds += ["upstream", "upstream-eof"]
    if live:
        kinds.append("upstream-gone")
    if world.connecting:
        kinds += ["connect", "refuse"]
    if world.lost:
        kinds.append("lost")
    return [kind for kind in kinds for _ in range(WEIGHT[kind])]


async def run(next_event: Callable[[list[str]], Event | None]) -> None:
    """Play events until none is left or none can happen, then let the client go, and check."""
    loop = asyncio.get_running_loop()
    errors: list[object] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context.get("exception") or context))
    world = World(loop)
    loop.create_connection = world.create_connection  # type: ignore[method-assign,assignment]
    client = world.client
    while (kinds := enabled(world)) and (event := next_event(kinds)) is not None:
        kind, which, split = event
        peer, live = world.client_transport, [t for t in world.upstreams if not t.closed]
        if kind == "client":
            data = REQUESTS[which % len(REQUESTS)]
            for piece in (data[:split], data[split:]):
                if piece and not peer.closed:
                    client.data_received(piece)
        elif kind == "upstream":
            data = RESPONSES[which % len(RESPONSES)]
            for piece in (data[:split], data[split:]):
                if piece and not live[-1].closed:
                    live[-1].protocol.data_received(piece)
        elif kind in ("connect", "refuse"):
            done, _protocol = world.connecting.pop(0)
            if kind == "connect":
                done.set_result(None)
            else:
                done.set_exception(ConnectionRefusedError(111, "Connection refused"))
        elif kind == "client-eof":
            peer.peer_eof = True
            if not client.eof_received():
                peer.close()
        elif kind == "client-gone":
            peer.close()
        elif kind == "upstream-eof":
            live[-1].peer_eof = True
            if not live[-1].protocol.eof_received():
                live[-1].close()
        elif kind == "upstream-gone":
            live[-1].close()
        elif kind == "lost":
            world.deliver_lost()
        await asyncio.sleep(0)  # tasks (connects) take their turn
        assert not errors, errors
    # the client goes; every connect still pending is refused; every close is delivered
    world.client_transport.close()
    for _ in range(5):
        world.deliver_lost()
        while world.connecting:
            world.connecting.pop(0)[0].set_exception(ConnectionRefusedError(111, "Connection refused"))
        await asyncio.sleep(0)
    world.deliver_lost()
    assert not errors, errors
    assert client.state == "closed"
    assert not world.proxy.state.connections
    pooled = world.proxy.spares.by_port.get(43000, []) + world.proxy.spares.by_port.get(43001, [])
    for up in world.upstreams:  # an upstream left open is pooled, between responses, with no client
        assert up.closed or (up.protocol in pooled and up.protocol.client is None and up.protocol.state == "done")
    assert all(not up.transport.is_closing() for up in pooled)
    world.proxy.routes.heads_expiry.cancel()  # type: ignore[union-attr]


@settings(max_examples=1000, deadline=None)
@given(data=st.data())
def test_any_order_of_events_keeps_the_connection_state_sound(data: st.DataObject) -> None:
    steps = iter(range(40))

    def draw(kinds: list[str]) -> Event | None:
        if next(steps, None) is None:
            return None
        kind = data.draw(st.sampled_from(kinds))
        which = data.draw(st.sampled_from(PLAIN_FIRST + list(range(len(REQUESTS)))))
        return kind, which, data.draw(st.one_of(st.just(0), st.just(0), st.integers(1, 60)))

    asyncio.run(run(draw))


SCRIPTS = [  # paths worth walking every time: 'kind [which [split]]'
    "client 0, connect, upstream 0, client 0, client 1, upstream 0, upstream 0",  # pinned, pipelined
    "client 0, connect, upstream 0, client 0, upstream-gone, lost, connect, upstream 0, client 1, upstream 1",
    "client 0, connect, upstream 0, client 0, upstream-gone, lost, refuse",  # sent again, and refused
    "client 0, connect, upstream 0, client 0, client 2, upstream 0, connect, upstream 0, client 0, upstream 0",
    "client 0, connect, upstream 0, client 0, client 6, client-eof, upstream 4, upstream 0, upstream 0",
    "client 8, connect, upstream 5, client 0, upstream 0, client-eof, upstream-eof",  # an upgrade, then a pipe
    "client 8, connect, upstream 5 9, client 0, upstream-eof, client 1, client-gone",
    "client 6, connect, upstream 0, client 7, upstream 1, client 4, upstream 0",  # bodies on a pooled upstream
    "client 0, connect, upstream 0, client 0, client 0, upstream 7, upstream-gone, lost",  # cut short, pinned
]


@pytest.mark.parametrize("steps", SCRIPTS)
def test_walked_paths_keep_the_connection_state_sound(steps: str) -> None:
    events = [step.split() for step in steps.split(", ")]
    playlist = iter((kind, *(int(n) for n in [*numbers, "0", "0"][:2])) for kind, *numbers in events)

    def play(kinds: list[str]) -> Event | None:
        event = next(playlist, None)
        assert event is None or event[0] in kinds, f"{event} cannot happen here"
        return event  # type: ignore[return-value]

    asyncio.run(run(play))


@pytest.mark.parametrize("lost_first", [True, False], ids=["gone", "going"])
def test_a_client_gone_while_its_upstream_connects_is_not_answered_when_the_port_refuses(lost_first: bool) -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[0])
        world.client_transport.close()
        if lost_first:  # else the refusal comes between the close and its connection_lost
            world.deliver_lost()
        await world.refuse()
        world.deliver_lost()
        assert world.client.state == "closed" and world.client_transport.dropped == []  # no 502 page after close

    in_world(check)


def test_a_refused_connect_gets_a_502_page_once_the_container_said_why_and_the_connection_closes() -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[0])
        await world.refuse()
        assert world.client_transport.written == [] and not world.client_transport.closed  # the page waits for the look
        world.inside.set_result(("a server listens on 127.0.0.1:3000 inside the container", "Have it listen on `0.0.0.0`."))
        await asyncio.sleep(0)
        page = b"".join(world.client_transport.written)
        assert page.startswith(b"HTTP/1.1 502 ") and b"Connection: close" in page and world.client_transport.closed
        assert b"a server listens on 127.0.0.1:3000 inside the container" in page and b"<code>0.0.0.0</code>" in page

    in_world(check)


def test_a_request_body_still_coming_is_read_while_the_502_page_waits() -> None:
    async def check(world: World) -> None:
        world.client.data_received(b"POST /echo HTTP/1.1\r\nHost: main.shop.localhost:3000\r\nContent-Length: 6\r\n\r\nabc")
        await world.refuse()
        world.inside.set_result(None)  # nothing known: the general words
        await asyncio.sleep(0)
        assert world.client_transport.written == []  # the body is not all here
        world.client.data_received(b"def")
        page = b"".join(world.client_transport.written)
        assert page.startswith(b"HTTP/1.1 502 ") and b"refused the connection" in page and world.client_transport.closed

    in_world(check)


def test_a_client_gone_while_the_502_page_waits_gets_nothing() -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[0])
        await world.refuse()
        world.client_transport.close()
        world.deliver_lost()
        world.inside.set_result(None)
        await asyncio.sleep(0)
        assert world.client.state == "closed" and world.client_transport.dropped == []

    in_world(check)


def test_bytes_an_upstream_sends_between_responses_close_it_and_never_reach_the_client() -> None:
    async def check(world: World) -> None:
        # a request that comes through a proxy already: the connection is not pinned after it
        # (on a pinned one, such bytes are relayed as a pipe would, and the connection closes)
        forwarded = b"GET / HTTP/1.1\r\nHost: %s\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n" % HOST
        world.client.data_received(forwarded)
        first = await world.connect()
        first.protocol.data_received(RESPONSES[0])
        first.protocol.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra")  # asked by nobody
        assert first.closed and world.client_transport.written == [RESPONSES[0]]
        world.deliver_lost()
        world.client.data_received(forwarded)  # the client goes on, on another upstream connection
        (await world.connect()).protocol.data_received(RESPONSES[1])
        assert world.client_transport.written == [RESPONSES[0], RESPONSES[1]] and not world.client_transport.closed

    in_world(check)


def test_a_half_closed_client_is_answered_then_closed() -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[0])
        upstream = await world.connect()
        assert world.client.eof_received() is True  # keep the transport open for the answer
        upstream.protocol.data_received(RESPONSES[0])
        assert world.client_transport.written == [RESPONSES[0]] and world.client_transport.closed

    in_world(check)


def test_a_client_that_half_closes_in_the_middle_of_a_head_gets_a_400_at_once() -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[0][:20])
        assert world.client.eof_received() is False  # nothing more can come: answer now, not after the head timeout
        written = b"".join(world.client_transport.written)
        assert written.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Connection: close" in written
        assert b"in the middle of the request head" in written and world.client_transport.closed
        assert world.connecting == []

    in_world(check)


def test_a_tls_handshake_on_an_http_port_is_closed_at_once() -> None:
    async def check(world: World) -> None:
        world.client.data_received(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32))
        assert world.client_transport.closed and world.client_transport.written == []
        assert world.connecting == [] and world.client.state == "closed"

    in_world(check)


def test_a_response_cut_short_on_a_pinned_connection_closes_the_client_and_is_not_asked_again() -> None:
    async def check(world: World) -> None:
        upstream = await world.pinned()
        world.client.data_received(REQUESTS[0])
        upstream.protocol.data_received(RESPONSES[7])  # a head and some of the body, then the server goes
        upstream.close()
        world.deliver_lost()
        await asyncio.sleep(0)
        assert world.client_transport.written == [RESPONSES[0], RESPONSES[7]] and world.client_transport.closed
        assert world.connecting == []  # part of the answer came: sending the request again could do it twice

    in_world(check)


def test_pipelined_requests_past_the_backlog_pause_reading_until_the_response_ends() -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[6])  # a POST: what follows it waits in the backlog
        upstream = await world.connect()
        world.client.data_received(REQUESTS[6] * (BACKLOG // len(REQUESTS[6]) + 1))
        assert not world.client_transport.reading
        upstream.protocol.data_received(RESPONSES[0])
        assert world.client_transport.reading

    in_world(check)


def test_an_upgraded_connection_passes_a_half_close_on_both_ways() -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[8])
        upstream = await world.connect()
        upstream.protocol.data_received(RESPONSES[5])
        assert upstream.protocol.eof_received() is True  # the server is done sending, not reading
        assert world.client_transport.eof and not world.client_transport.closed
        world.client.data_received(b"more frames")
        assert upstream.written[-1] == b"more frames"
        assert world.client.eof_received() is True
        assert upstream.eof and not upstream.closed

    in_world(check)


def test_a_pooled_upstream_that_closed_is_not_lent_again() -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[4])  # Connection: close, on an upstream kept alive
        upstream = await world.connect()
        upstream.protocol.data_received(RESPONSES[0])
        world.deliver_lost()  # the client is closed; the upstream is pooled
        assert world.proxy.spares.by_port[43000] == [upstream.protocol]
        upstream.close()  # the server's idle timeout: its connection_lost is still to come
        client, transport = world.another_client()
        client.data_received(REQUESTS[0])
        fresh = await world.connect()
        assert fresh is not upstream and fresh.written and not upstream.dropped

    in_world(check)


def test_an_interim_response_on_the_general_path_is_relayed_and_the_final_one_still_ends_the_exchange() -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[0])
        upstream = await world.connect()
        upstream.protocol.data_received(RESPONSES[4])  # 103 Early Hints: not the end
        upstream.protocol.data_received(RESPONSES[0])
        assert b"".join(world.client_transport.written) == RESPONSES[4] + RESPONSES[0]
        world.client.data_received(REQUESTS[0])  # the same upstream answers the next one
        upstream.protocol.data_received(RESPONSES[0])
        assert b"".join(world.client_transport.written).endswith(RESPONSES[0] * 2) and not upstream.closed

    in_world(check)


def test_bytes_a_client_sends_after_an_upgrade_request_reach_the_server_once_it_switches() -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[8] + b"an early frame")
        upstream = await world.connect()
        assert b"an early frame" not in b"".join(upstream.written)  # not before the server agrees
        upstream.protocol.data_received(RESPONSES[5])
        assert upstream.written[-1] == b"an early frame"

    in_world(check)


def test_an_upstream_connected_after_its_client_left_is_closed_unused() -> None:
    async def check(world: World) -> None:
        world.client.data_received(REQUESTS[0])
        world.client_transport.close()
        world.deliver_lost()
        upstream = await world.connect()
        assert upstream.closed and upstream.written == []

    in_world(check)


def test_the_pool_keeps_at_most_its_limit_per_port() -> None:
    async def check(world: World) -> None:
        clients = [world.another_client() for _ in range(SPARE_PER_PORT + 1)]
        for client, _transport in clients:  # all at once, so that each makes its own upstream connection
            client.data_received(REQUESTS[4])
        upstreams = [await world.connect() for _ in clients]
        for upstream in upstreams:
            upstream.protocol.data_received(RESPONSES[0])
        world.deliver_lost()
        assert len(world.proxy.spares.by_port[43000]) == SPARE_PER_PORT
        assert [u.closed for u in upstreams].count(True) == 1

    in_world(check)


def test_a_pinned_connection_with_a_response_under_way_outlives_the_idle_limit() -> None:
    async def check(world: World) -> None:
        client = world.client
        upstream = await world.pinned()
        client.data_received(REQUESTS[0])  # and its response is slow to come
        for _ in range(3):  # the idle timer fires, again and again
            client.deadline = world.loop.time() - 1
            client._timed_out()
        assert not world.client_transport.closed
        upstream.protocol.data_received(RESPONSES[0])
        for _ in range(2):  # answered, and then idle: the second look closes it
            client.deadline = world.loop.time() - 1
            client._timed_out()
        assert world.client_transport.closed and world.client_transport.written == [RESPONSES[0]] * 2

    in_world(check)


def test_a_request_for_a_pinned_upstream_that_is_closing_goes_to_a_new_connection_unsent() -> None:
    async def check(world: World) -> None:
        upstream = await world.pinned()
        upstream.close()  # the server's idle close; its connection_lost is still to come
        world.client.data_received(REQUESTS[0])
        assert upstream.dropped == []  # not written into a connection known to be going
        (await world.connect()).protocol.data_received(RESPONSES[1])
        assert world.client_transport.written == [RESPONSES[0], RESPONSES[1]]

    in_world(check)


@pytest.mark.parametrize("client_leaves_first", [False, True], ids=["sends-early", "leaves-early"])
def test_a_tcp_client_is_piped_whatever_it_does_before_its_upstream_connects(client_leaves_first: bool) -> None:
    async def check(world: World) -> None:  # the world's HTTP client stays idle
        async def target() -> tuple[int, Mark]:  # the proxy's: the published port, and the branch's mark
            return 5432, Mark()

        client = TcpClient(target, set())
        transport = Transport(world, client)
        client.connection_made(transport)  # type: ignore[arg-type]
        client.data_received(b"startup message")  # a database client speaks first
        if client_leaves_first:
            transport.close()
        upstream = await world.connect()
        await asyncio.sleep(0)
        if client_leaves_first:
            assert upstream.closed  # not left open with nobody on the other end
        else:
            assert upstream.written == [b"startup message"]
            client.data_received(b"query")
            assert upstream.written == [b"startup message", b"query"]

    in_world(check)


def test_with_the_hot_path_off_every_request_takes_the_general_path_on_the_same_connection() -> None:
    async def check(world: World) -> None:
        world.proxy.state.hot_path = False  # what DUALGIT_PROXY_HOT_PATH=0 gives the daemon
        world.client.data_received(REQUESTS[0])
        upstream = await world.connect()
        upstream.protocol.data_received(RESPONSES[0])
        assert world.client.pinned is None and world.client.state == "head"
        world.client.data_received(REQUESTS[1])
        upstream.protocol.data_received(RESPONSES[1])
        assert world.client.pinned is None and world.connecting == []  # the kept-alive upstream, reused
        assert world.client_transport.written == [RESPONSES[0], RESPONSES[1]]

    in_world(check)
