"""The proxy's pure parts byte by byte, and its HTTP handling fuzzed over a loopback socket."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dualgit import chunked
from dualgit.chunked import BadChunk, Chunked
from dualgit.proxy import hosts
from dualgit.proxy.http import (
    BadMessage,
    Framing,
    HeadCheck,
    check_partial,
    keep_alive,
    parse_request,
    render_head,
    request_framing,
    response_info,
)
from dualgit.proxy.relay import ClientConnection
from dualgit.proxy.server import Proxy
from dualgit.proxy.upstream import BodyRelay
from dualgit.worktrees.inventory import Container


def container(worktree: str, repo: str = "/src/shop/.git", ports: tuple[int, ...] = (3000,), state: str = "running",
              tcp: tuple[int, ...] = ()) -> Container:
    return Container(id=worktree, name="dual-x", state=state, repo=repo, worktree=worktree, gitdir=worktree + "/.git",
                     spec="", image_id="", ports={str(p): f"127.0.0.1:{40000 + p}" for p in ports},
                     http_ports=ports, tcp_ports=tcp)


def test_parse_request_head() -> None:
    head = parse_request(b"GET /a?b=c HTTP/1.1\r\nHost: x.localhost:3000\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert head.start == ("GET", "/a?b=c", "HTTP/1.1")
    assert head.get("host") == "x.localhost:3000" and head.get("x-a") == "1, 2"
    assert render_head(head.start, head.headers) == b"GET /a?b=c HTTP/1.1\r\nHost: x.localhost:3000\r\nX-A: 1\r\nx-a: 2\r\n\r\n"


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/2.0\r\n\r\n", b"GET / HTTP/0.9\r\n\r\n", b"G(T / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", b"GET / HTTP/1.1\r\n: empty\r\n\r\n", b"\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",  # bare LF
    b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n folded\r\n\r\n",  # obsolete line folding
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
])
def test_bad_request_heads(raw: bytes) -> None:
    with pytest.raises(BadMessage):
        parse_request(raw)


def test_a_head_is_rendered_anew_as_parsed() -> None:
    """What goes on is the head as llhttp read it, one way: words split by one space, values bare."""
    head = parse_request(b"GET  /a HTTP/1.1\r\nHost:   x.localhost  \r\n\r\n")
    assert render_head(head.start, head.headers) == b"GET /a HTTP/1.1\r\nHost: x.localhost\r\n\r\n"


@pytest.mark.parametrize("start", [b"GET / HTTP/1.1\n", b"GET / HTTP/1.1\r\nHost: a\nX", b"GET / HTTP/1.1\r\nX: a\r\n b"])
def test_a_malformed_head_is_refused_before_it_ends(start: bytes) -> None:
    with pytest.raises(BadMessage):
        check_partial(start)
    check_partial(b"GET / HTTP/1.1\r\nHost: a")  # a good start is no error
    check = HeadCheck()  # the same, arriving a byte at a time: each byte parsed once
    with pytest.raises(BadMessage):
        for i in range(1, len(start) + 1):
            check.feed(start[:i])


def test_framing() -> None:
    req = parse_request(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
    assert (request_framing(req).kind, request_framing(req).length) == ("length", 5)
    assert request_framing(parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")).kind == "chunked"
    for bad in (b"Content-Length: 5\r\nTransfer-Encoding: chunked", b"Content-Length: 5, 6", b"Content-Length: -1",
                b"Transfer-Encoding: gzip"):
        with pytest.raises(BadMessage):
            request_framing(parse_request(b"POST / HTTP/1.1\r\n" + bad + b"\r\n\r\n"))
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    assert response_info(ok, "GET")[1].kind == "length" and response_info(ok, "HEAD")[1].kind == "none"
    assert response_info(b"HTTP/1.1 204 No Content\r\n\r\n", "GET")[1].kind == "none"
    assert response_info(b"HTTP/1.0 200 OK\r\n\r\n", "GET")[1].kind == "close"


def test_keep_alive_rules() -> None:
    assert keep_alive(parse_request(b"GET / HTTP/1.1\r\n\r\n"))
    assert not keep_alive(parse_request(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert not keep_alive(parse_request(b"GET / HTTP/1.0\r\n\r\n"))
    assert keep_alive(parse_request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
    assert not response_info(b"HTTP/1.0 200 OK\r\n\r\n", "GET")[2]
    assert response_info(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", "GET")[2]


def test_the_chunked_decoder_finds_the_end_and_the_payload_across_any_split() -> None:
    message = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    after = b"GET /next HTTP/1.1\r\n"
    for cut in range(len(message) + 1):
        chunks = Chunked(keep=True)
        n1 = chunks.feed(message[:cut])
        done1 = chunks.ended
        assert n1 == cut and (not done1 or cut == len(message))
        n2 = chunks.feed(message[cut:] + after)
        assert chunks.ended and n1 + n2 == len(message)
        assert chunks.take() == b"hello world"
    assert chunked.decode(message + after) == b"hello world"
    for bad in (b"zz\r\n", b"2\r\nabc\r\n", b"-1\r\n", b"f" * 5000, b"0x5\r\n", b"+5\r\n", b"0_5\r\n", b" 5\r\n",
                b"5\nhello\r\n", b"5\r\nhello\n", b"0\r\n\n", b"5;a b\r\n", b"0\r\nno colon\r\n"):
        with pytest.raises(BadChunk):
            Chunked().feed(bad)
    with pytest.raises(BadChunk):
        chunked.decode(message[:-2])
    relay = BodyRelay(Framing("chunked"))  # the proxy's side: the same decoder, its errors a bad message
    with pytest.raises(BadMessage):
        relay.take(b"zz\r\n")


def test_host_rules() -> None:
    assert hosts.host_only("Feat-A.Shop.localhost:3000") == "feat-a.shop.localhost"
    assert hosts.host_only("localhost") == "localhost"
    assert hosts.host_only("[::1]:3000") == "[::1]"
    assert hosts.host_only("127.0.0.1:3000") == "127.0.0.1"
    assert hosts.host_only("Main.Shop.localhost.:3000") == "main.shop.localhost"  # a fully qualified name
    assert hosts.host_only("::1") == "::1"  # unbracketed: its colons are not a port's
    for evil in ("example.com", "localhost.example.com", "127.0.0.2", "10.0.0.1:3000", "[::2]", ""):
        assert hosts.host_only(evil) is None


def test_slugs_collisions_and_lookup() -> None:
    cs = [container("/w/a"), container("/w/b"), container("/w/c"), container("/x/d", repo="/z/shop/.git"),
          container("/x/e", repo="/zz/shop/.git")]
    table = hosts.build(cs, {"/w/a": "feat/a", "/w/b": "feat-a", "/w/c": None, "/x/d": "feat/a", "/x/e": "feat/a"})
    names = [b.host() for b in table.backends]
    assert names[0] == "feat-a.shop.localhost"
    assert names[1].startswith("feat-a-") and names[1].endswith(".shop.localhost")
    assert names[2] == "c.shop.localhost"  # detached: named after its folder
    assert names[3].startswith("feat-a.shop-") and names[4].startswith("feat-a.shop-")  # more repositories named shop
    assert len(set(names)) == 5
    assert table.resolve("feat-a.shop.localhost:3000", 3000).backend is table.backends[0]
    assert table.resolve("c.localhost", 3000).backend is table.backends[2]
    ambiguous = table.resolve("feat-a.localhost", 3000)
    assert ambiguous.kind == "not-found" and len(ambiguous.candidates) == 3
    assert table.resolve("feat-a.shop.localhost", 4000).kind == "not-found"
    assert table.resolve("localhost:3000", 3000).kind == "index"
    assert table.resolve("evil.com", 3000).kind == "forbidden"
    assert table.http_ports() == {3000}


def test_tcp_ports_are_stable_and_distinct() -> None:
    cs = [container(f"/w/{i}", tcp=(5432,)) for i in range(30)]
    branches = {f"/w/{i}": f"b{i}" for i in range(30)}
    first = hosts.build(cs, branches).tcp_targets()
    again = hosts.build(list(reversed(cs)), branches).tcp_targets()
    assert len(first) == 30 and set(first) == set(again)
    assert all(hosts.TCP_PORT_BASE <= p < hosts.TCP_PORT_BASE + hosts.TCP_PORT_SPAN for p in first)
    assert hosts.stable_tcp_port("shop", "b1", 5432) == hosts.stable_tcp_port("shop", "b1", 5432)


def test_tcp_ports_that_collide_on_the_last_port_wrap_to_the_first() -> None:
    last = hosts.TCP_PORT_BASE + hosts.TCP_PORT_SPAN - 1
    onto_last = [f"b{i}" for i in range(200_000) if hosts.stable_tcp_port("shop", f"b{i}", 5432) == last][:2]
    cs = [container(f"/w/{b}", tcp=(5432,)) for b in onto_last]
    routes = hosts.build(cs, {f"/w/{b}": b for b in onto_last}).tcp_targets()
    assert sorted(routes) == [hosts.TCP_PORT_BASE, last]


def test_urls_of_one_worktree_leave_out_the_others() -> None:
    table = hosts.build([container("/w/a", tcp=(5432,)), container("/w/b")], {"/w/a": "main", "/w/b": "feat"})
    rows = table.urls(worktree="/w/a")
    assert [r["branch"] for r in rows] == ["main", "main"] and str(rows[1]["url"]).startswith("tcp://127.0.0.1:")
    assert {r["branch"] for r in table.urls("/src/shop/.git")} == {"main", "feat"}


@pytest.fixture(scope="module")
def bare_proxy() -> Iterator[int]:
    """The proxy's HTTP side on an ephemeral loopback port, with no containers: pages only."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, context: ERRORS.append(str(context.get("exception") or context)))
    proxy = Proxy(head_timeout=2.0)
    started = threading.Event()
    box: dict[str, int] = {}

    async def main() -> None:
        server = await loop.create_server(lambda: ClientConnection(proxy.state, 3000), "127.0.0.1", 0)
        box["port"] = server.sockets[0].getsockname()[1]
        started.set()
        await proxy.stopping.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    started.wait(10)
    yield box["port"]
    loop.call_soon_threadsafe(proxy.stopping.set)
    thread.join(10)


ERRORS: list[str] = []  # what escaped the bare proxy's protocol objects: a traceback in a real proxy's log


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def healthy(port: int) -> bool:
    return exchange(port, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_pages_without_containers(bare_proxy: int) -> None:
    assert healthy(bare_proxy)
    assert exchange(bare_proxy, b"GET / HTTP/1.1\r\nHost: x.y.localhost\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert exchange(bare_proxy, b"GET / HTTP/1.1\r\nHost: evil.com\r\n\r\n").startswith(b"HTTP/1.1 403")
    assert exchange(bare_proxy, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
    # pipelined requests are answered in order, a body is read past
    two = exchange(bare_proxy, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc"
                               b"GET / HTTP/1.1\r\nHost: nope.localhost\r\nConnection: close\r\n\r\n")
    assert two.startswith(b"HTTP/1.1 200") and two.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 404" in two


def answer_without_closing(port: int, data: bytes) -> bytes:
    """What the proxy answers while the client keeps its side open: it must not wait for more."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize("data", [
    b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: \xb2\r\n\r\n",
    b"GET / HTTP/1.1\nHost: localhost\n",  # bare LF: refused before the head ends
    b"GET / HTTP/1.1\r\nHost: localhost\r\nX: a\r\n folded",
    b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n",
    b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello",
    b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
])
def test_a_malformed_request_gets_400_and_a_close_at_once(bare_proxy: int, data: bytes) -> None:
    """400, not the 408 that the head timeout would give, and a close, with nothing in the log."""
    answer = answer_without_closing(bare_proxy, data)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in answer, answer[:200]
    assert not ERRORS, ERRORS


head_line = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda m, t, v: f"{m} {t} {v}".encode("utf-8", "surrogatepass"),
              st.sampled_from(["GET", "POST", "", "G ET", "\x00"]), st.text(max_size=40),
              st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/9", ""])),
)
header = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda k, v: f"{k}: {v}".encode("utf-8", "surrogatepass"),
              st.sampled_from(["Host", "Content-Length", "Transfer-Encoding", "Connection", "X", ""]),
              st.text(max_size=40)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head_line, st.lists(header, max_size=8), st.binary(max_size=200))
def test_fuzzed_requests_never_crash_the_proxy(bare_proxy: int, first: bytes, headers: list[bytes], body: bytes) -> None:
    """Whatever comes, the answer is well-formed HTTP (a page, or 400 and a close), never a dropped
    connection, and nothing escapes into the log."""
    data = first + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body
    answer = exchange(bare_proxy, data)
    assert answer.startswith(b"HTTP/1.1 "), (data, answer)
    status, framing, _ = response_info(answer[:answer.index(b"\r\n\r\n") + 4], "GET")
    assert status in (200, 400, 403, 404, 408, 431) and framing.kind == "length"
    assert not ERRORS, ERRORS
    assert healthy(bare_proxy)


def test_response_heads_status_framing_and_keep_alive() -> None:
    cases = {  # head: (status, framing after GET, after HEAD, whether the connection stays open)
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n": (200, ("length", 3), True),
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n": (200, ("chunked", 0), True),
        b"HTTP/1.0 200 OK\r\n\r\n": (200, ("close", 0), False),
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n": (200, ("length", 0), True),
        b"HTTP/1.1 204 No Content\r\n\r\n": (204, ("none", 0), True),
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 9\r\n\r\n": (200, ("length", 9), False),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n": (101, ("none", 0), True),
        b"HTTP/1.1 304 \r\n\r\n": (304, ("none", 0), True),
        b"HTTP/1.1 200\r\n\r\n": (200, ("close", 0), False),
    }
    for raw, (status, (kind, length), alive) in cases.items():
        got_status, framing, got_alive = response_info(raw, "GET")
        assert (got_status, framing.kind, framing.length) == (status, kind, length), raw
        assert got_alive == alive or kind == "close", raw
        head_status, head_framing, _ = response_info(raw, "HEAD")
        assert head_status == status and head_framing.kind == "none", raw
    for bad in (b"HTTP/2 200 OK\r\n\r\n", b"HTTP/1.1 2000 OK\r\n\r\n", b"garbage\r\n\r\n", b"RTSP/1.0 200 OK\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n"):
        with pytest.raises(BadMessage):
            response_info(bad, "GET")


fast_header = st.one_of(
    st.builds(lambda k, v: k + b":" + v, st.sampled_from([b"Host", b"host", b"HOST ", b"Accept", b"Cookie", b"X-Forwarded-For",
                                                          b"Content-Length", b"Transfer-Encoding", b"Connection", b"TE",
                                                          b"Upgrade", b"Expect", b"Te-st", b"Hostname", b"Bad Name", b"",
                                                          b"Keep-Alive", b"proxy-connection", b"Trailer",
                                                          b"X-Forwarded-Host", b"x-forwarded-proto", b"X-Forwarded"]),
              st.sampled_from([b" a.localhost:3000", b"1", b" chunked", b" keep-alive", b" close", b"", b"\x00",
                               b" x\ry", b" caf\xc3\xa9", b"\t spaced \t", b" \x7f", b" \x01", b" \xff",
                               b" upgrade", b" websocket"])),
    st.sampled_from([b" folded", b"\tfolded", b"no colon", b"Host: a.localhost:3000"]),
    st.binary(max_size=30),
)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.sampled_from([b"GET / HTTP/1.1", b"GET /a?b=c HTTP/1.1", b"HEAD / HTTP/1.1", b"GET / HTTP/1.0",
                                  b"POST / HTTP/1.1", b"get / HTTP/1.1", b"GET  / HTTP/1.1", b"GET /\x7f HTTP/1.1",
                                  b"GET http://a/ HTTP/1.1", b"GET / HTTP/1.1 "]),
                 st.builds(lambda t: b"GET /" + t + b" HTTP/1.1", st.binary(max_size=6))),
       st.lists(fast_header, max_size=6), st.binary(max_size=8))
def test_fast_request_path_only_takes_what_the_full_parser_reads_the_same(first: bytes, headers: list[bytes],
                                                                          tail: bytes) -> None:
    """Whatever the hot path forwards untouched, the general path would have parsed as a bodiless GET
    to the same Host, with nothing hop-by-hop or forwarded in it."""
    from dualgit.proxy.fast import plain_get
    from dualgit.proxy.http import HOP_BY_HOP

    data = first + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + tail
    if plain_get(b"a.localhost:3000").fullmatch(data) is None:
        return
    assert not tail  # exactly one head, nothing after it
    head = parse_request(data)
    assert head.start[0] == "GET" and head.start[2] == "HTTP/1.1"
    assert head.get("host") == "a.localhost:3000"
    assert request_framing(head).kind == "none" and keep_alive(head)
    assert not {name for name in head.index if name in HOP_BY_HOP or name.startswith("x-forwarded-") or name == "expect"}


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 ",
                        b"HTTP/1.1 101 Switching", b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK",
                        b"HTTP/1.0 200 OK", b"HTTP/1.1 2000 OK", b"http/1.1 200 OK"]),
       st.lists(st.one_of(
           st.builds(lambda k, v: k + b":" + v,
                     st.sampled_from([b"Content-Length", b"content-length", b"Transfer-Encoding", b"Connection", b"Server",
                                      b"Content-Type", b"Content-Length ", b"Upgrade", b""]),
                     st.sampled_from([b" 3", b" 0", b"3", b" 3, 4", b" chunked", b" keep-alive", b" close", b" x", b" -1",
                                      b" 99999999999999999", b" upgrade", b" websocket"])),
           st.binary(max_size=20)), max_size=5),
       st.binary(max_size=8))
def test_fast_response_path_agrees_with_the_full_parser(first: bytes, headers: list[bytes], body: bytes) -> None:
    from dualgit.proxy.fast import ResponseEnd

    data = first + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body
    follower = ResponseEnd()
    ended = follower.start(data)
    if ended is None:
        assert follower.start(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx") is True  # nothing left behind
        return
    while True:  # interim (1xx) heads pass on; the final head decides
        raw = data[: data.find(b"\r\n\r\n") + 4]  # a head ends at the first blank line
        status, framing, alive = response_info(raw, "GET")
        data = data[len(raw):]
        if status >= 200:
            break
    assert alive and 200 <= status < 600 and framing.kind in ("length", "chunked", "none")
    if framing.kind == "length":
        # llhttp passes over empty lines between messages: those are the only bytes after the end
        # that the hot path relays (the general path drops them), anything else is declined
        assert ended == (len(data) >= framing.length) and not data[framing.length:].strip(b"\r\n")


def test_hot_path_declines_what_it_does_not_carry_and_is_none_the_worse() -> None:
    from dualgit.proxy.fast import ParserError, ResponseEnd, plain_get

    get = plain_get(b"a.localhost")
    ok = b"GET / HTTP/1.1\r\nHost: a.localhost\r\nAccept: */*\r\n\r\n"
    assert get.fullmatch(ok) and get.fullmatch(b"GET /x?y HTTP/1.1\r\nUser-Agent: t\r\nHost: a.localhost\r\n\r\n")
    for declined in (b"GET / HTTP/1.1\r\nHost: a.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: a.localhost\r\nContent-Length: 2\r\n\r\n", ok + ok, ok[:-2],
                     b"POST / HTTP/1.1\r\nHost: a.localhost\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: a.localhost\r\nhost: a.localhost\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: b.localhost\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a.localhost \r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: a.localhost\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: a.localhost\r\nx-forwarded-host: evil\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: a.localhost\r\nTE: trailers\r\n\r\n"):
        assert get.fullmatch(declined) is None, declined
    end = ResponseEnd()
    assert end.start(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n") is None
    assert end.start(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel") is False
    assert end.more(b"lo\r\n0\r\n\r\n") is True
    assert end.start(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel") is False
    with pytest.raises(ParserError):
        end.more(b"loHTTP/1.1 200 OK\r\n")  # bytes after the end


def test_pinned_responses_are_counted_as_they_end_however_they_arrive() -> None:
    from dualgit.proxy.fast import ResponseCount

    stream = (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
              b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
              b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n")
    for size in (1, 7, len(stream)):
        count, seen = ResponseCount(), []
        for i in range(0, len(stream), size):
            count.parser.feed_data(stream[i:i + size])
            seen.append(count.finals)
        assert seen[-1] == 3 and seen == sorted(seen)
        if size == 1:  # seen[i]: counted once byte i is in; the interim response is not counted
            hello = stream.index(b"hello") + 4
            assert seen[hello - 1] == 0 and seen[hello] == 1



def test_the_resolutions_kept_are_bounded_whatever_hosts_clients_send() -> None:
    async def check() -> int:
        proxy = Proxy()
        routes = proxy.routes
        routes.containers, routes.branches = [container("/w/a")], {"/w/a": "main"}
        routes.table = hosts.build(routes.containers, routes.branches)
        routes.heads_expiry = asyncio.get_running_loop().call_later(60, lambda: None)  # the branch reads are fresh
        for i in range(5000):
            routes.resolve(f"b{i}.shop.localhost:3000", 3000)
        routes.heads_expiry.cancel()
        return len(routes.resolved)

    assert asyncio.run(check()) <= 4096


# /proc/net/tcp and tcp6 as a container's kernel prints them (the columns after `st` cut short)
PROC_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 64049351 1
   1: 0100007F:0BB8 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 64049352 1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 64049353 1
   3: 0200A8C0:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 64049354 1
"""
PROC_TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 00000000000000000000000000000000:1435 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


def test_what_listens_inside_a_container_says_why_nothing_answers() -> None:
    from dualgit.proxy.inside import Listening, explain, listening

    both = PROC_TCP + PROC_TCP6
    assert listening(both, 3000) == Listening(False, ("127.0.0.1", "::1"))  # the connected socket is not a listener
    assert listening(both, 8080) == Listening(True, ())  # 0.0.0.0
    assert listening(both, 9000) == Listening(True, ())  # the container's own address
    assert listening(both, 5173) == Listening(True, ())  # ::
    assert listening(both, 4000) == Listening(False, ())
    assert listening("OCI runtime exec failed: exec: \"cat\": executable file not found", 3000) is None
    assert listening("", 3000) is None

    why, fix = explain(listening(both, 3000), 3000)  # type: ignore[misc]
    assert why == ("a server listens on 127.0.0.1:3000 and [::1]:3000 inside the container, "
                   "which Docker's published port cannot reach")
    assert fix.startswith("Have it listen on 0.0.0.0:3000: for example `vite --host 0.0.0.0`")
    assert explain(listening(both, 4000), 4000) == ("nothing listens on port 4000 inside the container", "")
    assert explain(listening(both, 8080), 8080) is None  # it listens, and still closed: the general words
    assert explain(None, 3000) is None


def test_a_bad_gateway_page_shows_the_fix_with_its_code() -> None:
    from dualgit.proxy import pages

    backend = hosts.build([container("/w/a")], {"/w/a": "main"}).serving(3000)[0]
    page = pages.bad_gateway(backend, 3000, "a server listens on 127.0.0.1:3000", "Run `vite --host 0.0.0.0` <now>.")
    assert b"<p>Run <code>vite --host 0.0.0.0</code> &lt;now&gt;.</p>" in page
    assert b"git dual exec" not in page


def test_which_running_proxy_is_older_than_this_dualgit() -> None:
    """Only an older proxy is replaced after an upgrade: a newer one belongs to another install."""
    from dualgit import __version__
    from dualgit.proxy.daemon import older

    assert older("")  # a pid file from before versions were written
    assert older("0.0.9") and older("0.1.0rc1")
    assert not older(__version__) and not older("999.0") and not older("0.10.0")
