"""The proxy end to end: real containers serving real HTTP, traffic on loopback only."""

from __future__ import annotations

import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PORT, add_worktree, dual, free_port, git, need_image, write_config
from dualgit import __version__
from dualgit.engine.api import DockerAPI
from tests_support import wait_for

DEBIAN = "dualgit/debian:bookworm"
BACKEND = Path(__file__).parent / "assets" / "backend.py"
TCP = 7000
KEEPALIVE = 3  # seconds a kept-alive connection waits for its next request, in these tests


def request(host: str, path: str = "/", port: int = PORT, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body=body, headers={"Host": f"{host}:{port}", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def serve(tree: Path, name: str) -> None:
    """Run the test backend inside the worktree's container, as a user would start a dev server."""
    shutil.copy(BACKEND, tree / "backend.py")
    result = dual("exec", "sh", "-c", f"nohup python3 backend.py {name} {PORT} {TCP} >/tmp/backend.log 2>&1 &", cwd=tree)
    assert result.returncode == 0, result.stderr
    probe = f"import socket; socket.create_connection(('127.0.0.1', {PORT}), 1)"
    wait_for(lambda: dual("exec", "python3", "-c", probe, cwd=tree).returncode == 0)


class Proxy:
    def __init__(self, cwd: Path, log: Path, wrapper: tuple[str, ...] = (), port: int = PORT) -> None:
        self.cwd, self.log, self.port = cwd, log, port
        self.wrapper = wrapper  # a command the proxy runs under (say, one that drops a capability)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*self.wrapper, "git", "dual", "proxy", "run"], cwd=self.cwd, stdout=out, stderr=out,
                                         env={**os.environ, "DUALGIT_PROXY_HEAD_TIMEOUT": "3",
                                              "DUALGIT_PROXY_KEEPALIVE_TIMEOUT": str(KEEPALIVE)})
        # ready when its own status says it listens (not just anything on the port: say, a stray proxy)
        wait_for(lambda: self.port in json.loads(dual("proxy", "status", "--json", cwd=self.cwd).stdout).get("http_ports", []))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None

    def rss_kib(self) -> int:
        pid = self._python_pid()  # `git dual` runs git, which runs the proxy's python
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    def _python_pid(self) -> int:
        status = json.loads(dual("proxy", "status", "--json", cwd=self.cwd).stdout)
        return int(status["pid"])


@pytest.fixture
def site(repo: Path, docker: DockerAPI, tmp_path: Path) -> Iterator[tuple[Proxy, dict[str, Path]]]:
    """Three worktrees of `demo`, each serving its own page on :PORT and echoing on TCP :7000,
    and a running proxy."""
    need_image(docker, DEBIAN)
    trees = {"main": repo, "feat/auth": add_worktree(repo, "demo-auth", "feat/auth"),
             "feat/cart": add_worktree(repo, "demo-cart", "feat/cart")}
    for branch, tree in trees.items():
        write_config(tree, f'image = "{DEBIAN}"\nports = [{PORT}]\ntcp_ports = [{TCP}]\n')
        assert dual("up", cwd=tree).returncode == 0
        serve(tree, branch)
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        yield proxy, trees
    finally:
        proxy.stop()


def test_three_branches_on_one_port(site: tuple[Proxy, dict[str, Path]]) -> None:
    for host, page in (("main.demo.localhost", b"page main\n"), ("feat-auth.demo.localhost", b"page feat/auth\n"),
                       ("feat-cart.demo.localhost", b"page feat/cart\n"), ("feat-auth.localhost", b"page feat/auth\n")):
        status, _, body = request(host)
        assert (status, body) == (200, page), host


def test_keep_alive_http10_and_forwarded_headers(site: tuple[Proxy, dict[str, Path]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    for _ in range(3):
        conn.request("GET", "/headers", headers={"Host": f"feat-cart.demo.localhost:{PORT}"})
        resp = conn.getresponse()
        seen = json.loads(resp.read())
        assert resp.status == 200 and not resp.will_close
    conn.close()
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == f"feat-cart.demo.localhost:{PORT}"

    with socket.create_connection(("127.0.0.1", PORT)) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: main.demo.localhost\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"page main\n")


def test_sse_events_arrive_as_sent(site: tuple[Proxy, dict[str, Path]]) -> None:
    with socket.create_connection(("127.0.0.1", PORT), timeout=10) as s:
        s.sendall(b"GET /sse HTTP/1.1\r\nHost: main.demo.localhost\r\n\r\n")
        arrivals = []
        data = b""
        while b"0\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk
            data += chunk
            if b"data: main" in chunk:
                arrivals.append(time.monotonic())
    assert data.count(b"data: main") == 3
    # each event came on its own, about 0.5 s apart, not all at once at the end
    assert len(arrivals) == 3 and arrivals[2] - arrivals[0] > 0.7


def test_bodies_stream_both_ways(site: tuple[Proxy, dict[str, Path]]) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 7)
    status, _, body = request("feat-auth.demo.localhost", "/echo", method="POST", body=payload)
    assert status == 200 and body == payload

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(payload), 100_000):
            yield payload[i:i + 100_000]

    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=20)
    conn.request("POST", "/echo", body=chunks(), headers={"Host": "feat-auth.demo.localhost"}, encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == payload
    conn.close()
    status, _, body = request("feat-auth.demo.localhost", "/big?n=1000000&chunked=1")
    assert status == 200 and body == b"x" * 1_000_000


def test_big_download_keeps_proxy_memory_flat(site: tuple[Proxy, dict[str, Path]]) -> None:
    """512 MiB to a slow reader, as a connection's first request (the general path) and on a pinned
    connection (the hot path): flow control holds the rest back, so the proxy's memory stays flat."""
    proxy, _ = site
    before = proxy.rss_kib()
    size = 512 * 1024 * 1024
    head = f"GET /big?n={size} HTTP/1.1\r\nHost: main.demo.localhost\r\n\r\n".encode()
    peak = before
    for pinned in (False, True):
        got = 0
        with socket.create_connection(("127.0.0.1", PORT), timeout=60) as s:
            if pinned:
                s.sendall(b"GET / HTTP/1.1\r\nHost: main.demo.localhost\r\n\r\n")
                got = len(s.recv(65536))  # the small page, whole in one read from loopback
            s.sendall(head)
            while got <= size:  # the heads and the body are more than `size`
                chunk = s.recv(1 << 20)
                assert chunk, f"the connection ended after {got} bytes"
                got += len(chunk)
                if got % (64 << 20) < (1 << 20):
                    peak = max(peak, proxy.rss_kib())
                    time.sleep(0.05)  # a slower reader than the backend: flow control must hold the rest
    assert peak - before < 64 * 1024, f"proxy grew from {before} KiB to {peak} KiB"


def test_websocket_upgrade_becomes_a_pipe(site: tuple[Proxy, dict[str, Path]]) -> None:
    def receive(s: socket.socket, done: Callable[[bytes], bool]) -> bytes:
        got = b""
        while not done(got):
            chunk = s.recv(65536)
            assert chunk, f"the proxy closed the connection after {got!r}"
            got += chunk
        return got

    with socket.create_connection(("127.0.0.1", PORT), timeout=10) as s:
        # the upgrade comes second, as on a reused connection
        s.sendall(b"GET / HTTP/1.1\r\nHost: feat-cart.demo.localhost\r\n\r\n")
        receive(s, lambda got: got.endswith(b"page feat/cart\n"))
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: feat-cart.demo.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        assert receive(s, lambda got: b"\r\n\r\n" in got).startswith(b"HTTP/1.1 101")
        for message in (b"hello", bytes(range(256)) * 100):
            s.sendall(message)
            assert receive(s, lambda got: len(got) >= len(message)) == message  # noqa: B023 (called at once)


def test_raw_tcp_port_is_stable_and_echoes(site: tuple[Proxy, dict[str, Path]]) -> None:
    proxy, trees = site
    rows = json.loads(dual("urls", "--json", cwd=trees["feat/auth"]).stdout)
    assert {"branch": "feat/auth", "port": PORT, "url": f"http://feat-auth.demo.localhost:{PORT}/", "label": None} in rows
    tcp = {r["branch"]: r["url"] for r in rows if str(r["url"]).startswith("tcp://")}
    assert set(tcp) == {"main", "feat/auth", "feat/cart"} and len(set(tcp.values())) == 3
    port = int(tcp["feat/auth"].rsplit(":", 1)[1])

    def echo() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"ping\n")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(1024):
                data += chunk
            return data

    assert wait_for(echo) == b"ping\n"
    proxy.stop()
    proxy.start()  # a restarted proxy rebuilds everything from the engine, on the same ports
    assert json.loads(dual("urls", "--json", cwd=trees["feat/auth"]).stdout) == rows
    assert wait_for(echo) == b"ping\n"
    assert request("feat-cart.demo.localhost")[2] == b"page feat/cart\n"


def test_a_half_closed_head_and_a_tls_handshake_are_answered_at_once(site: tuple[Proxy, dict[str, Path]]) -> None:
    """Neither waits for the head timeout (3 s here): a half-close mid-head gets a 400, a TLS
    ClientHello (https:// typed for this http:// port) an immediate close and a line in the log."""
    proxy, _ = site
    with socket.create_connection(("127.0.0.1", PORT), timeout=2) as s:  # a 408 would come after 3 s: a timeout
        s.sendall(b"GET / HTTP/1.1\r\nHost: feat-auth.demo.localhost")
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:100]
    hello = bytes.fromhex("160301003e0100003a0303") + bytes(32) + bytes.fromhex("000002c02f0100")
    with socket.create_connection(("127.0.0.1", PORT), timeout=2) as s:
        s.sendall(hello)
        try:
            assert s.recv(4096) == b""
        except ConnectionResetError:
            pass  # an abort: the same answer to a TLS client
    assert wait_for(lambda: "a TLS handshake from 127.0.0.1" in proxy.log.read_text(), timeout=5)


def test_branch_switch_moves_the_route(site: tuple[Proxy, dict[str, Path]]) -> None:
    _, trees = site
    assert request("feat-cart.demo.localhost")[0] == 200
    kept = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)  # a connection open across the switch

    def on_kept() -> int:
        kept.request("GET", "/", headers={"Host": f"feat-cart.demo.localhost:{PORT}"})
        resp = kept.getresponse()
        resp.read()
        return resp.status

    assert on_kept() == 200 and on_kept() == 200
    git("switch", "-q", "-c", "feat/basket", cwd=trees["feat/cart"])
    status, _, body = wait_for(lambda: (r := request("feat-basket.demo.localhost"))[0] == 200 and r, timeout=5)
    assert body == b"page feat/cart\n"
    assert request("feat-cart.demo.localhost")[0] == 404
    assert on_kept() == 404  # the old name is gone for a kept-alive connection too
    kept.close()


def test_one_kept_alive_connection_follows_each_request(site: tuple[Proxy, dict[str, Path]]) -> None:
    """Each request on a kept-alive connection is routed and forwarded on its own, whatever came before."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=20)

    def get(host: str, path: str = "/", method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn.request(method, path, body=body, headers={"Host": f"{host}:{PORT}", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        assert not resp.will_close
        return resp.status, data

    assert get("main.demo.localhost") == (200, b"page main\n")
    assert get("feat-auth.demo.localhost") == (200, b"page feat/auth\n")
    assert get("feat-auth.demo.localhost") == (200, b"page feat/auth\n")
    assert get("feat-auth.demo.localhost", "/big?n=1000000") == (200, b"x" * 1_000_000)
    assert get("feat-auth.demo.localhost") == (200, b"page feat/auth\n")
    sent = json.loads(get("feat-auth.demo.localhost", "/headers", headers={"X-Forwarded-For": "10.1.2.3"})[1])
    assert sent["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
    sent = json.loads(get("feat-auth.demo.localhost", "/headers", headers={"Cookie": "a=1"})[1])
    assert sent["x-forwarded-for"] == "127.0.0.1" and sent["cookie"] == "a=1"
    assert sent["x-forwarded-host"] == f"feat-auth.demo.localhost:{PORT}"
    assert get("feat-auth.demo.localhost", "/echo", "POST", b"abc") == (200, b"abc")
    assert get("nope.demo.localhost")[0] == 404
    assert get("main.demo.localhost") == (200, b"page main\n")
    conn.close()


def test_a_pinned_connection_keeps_http_order_and_survives_its_upstream(site: tuple[Proxy, dict[str, Path]]) -> None:
    """After a first response, a kept-alive connection's plain GETs go straight to its upstream and the
    responses straight back (the proxy's hot path). Requests sent before a response ends are answered
    in order, whatever their kind; the upstream closing, before or within a response, is handled."""
    def head(path: str, extra: str = "") -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: main.demo.localhost:{PORT}\r\n{extra}\r\n".encode()

    def read_until(s: socket.socket, end: bytes) -> bytes:
        got = b""
        while not got.endswith(end):
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
        return got

    def until_eof(s: socket.socket) -> bytes:
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        return got

    with socket.create_connection(("127.0.0.1", PORT), timeout=10) as s:
        s.sendall(head("/"))
        read_until(s, b"page main\n")
        # a slow streamed response, then a plain GET and a POST sent while it streams: all three, in order
        s.sendall(head("/sse"))
        time.sleep(0.2)
        s.sendall(head("/"))
        time.sleep(0.2)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: main.demo.localhost:%d\r\nContent-Length: 4\r\n\r\nabcd" % PORT)
        got = read_until(s, b"abcd")
        sse, page, echo = got.index(b"data: main 2"), got.index(b"page main\n"), got.index(b"\r\n\r\nabcd")
        assert sse < got.index(b"0\r\n\r\n", sse) < page < echo, got
        # the server ends the connection after a response: the next request goes out on a new one
        s.sendall(head("/bye"))
        assert read_until(s, b"bye\n").startswith(b"HTTP/1.1 200")
        time.sleep(0.3)
        s.sendall(head("/"))
        read_until(s, b"page main\n")
        # the server closes as a request comes in, before answering it: the proxy sends it again
        s.sendall(head("/drop-next"))
        read_until(s, b"ok\n")
        s.sendall(head("/headers"))
        assert json.loads(read_until(s, b"}").split(b"\r\n\r\n", 1)[1])["host"] == f"main.demo.localhost:{PORT}"
        # still kept alive after an idle spell shorter than the proxy's limit
        time.sleep(KEEPALIVE / 2)
        s.sendall(head("/"))
        read_until(s, b"page main\n")
        # a response cut short: the client's connection ends too, so it cannot take the rest for a body
        s.sendall(head("/cut"))
        assert until_eof(s).endswith(b"\r\n\r\n" + b"y" * 10)

    with socket.create_connection(("127.0.0.1", PORT), timeout=10) as s:
        s.sendall(head("/"))
        read_until(s, b"page main\n")
        # half-closed with a response under way: the response comes whole, then the connection ends
        s.sendall(head("/sse"))
        time.sleep(0.2)
        s.shutdown(socket.SHUT_WR)
        assert until_eof(s).endswith(b"data: main 2\n\n\r\n0\r\n\r\n")

    with socket.create_connection(("127.0.0.1", PORT), timeout=4 * KEEPALIVE) as s:
        s.sendall(head("/"))
        read_until(s, b"page main\n")
        s.sendall(head("/"))
        read_until(s, b"page main\n")
        assert until_eof(s) == b""  # an idle pinned connection is closed in time (between one and two limits)
    assert request("main.demo.localhost")[2] == b"page main\n"
    assert b"Traceback" not in site[0].log.read_bytes()


def read_response(s: socket.socket, pending: bytearray, head_only: bool) -> tuple[int, bytes]:
    """One response off a raw socket: (status, body), framed by Content-Length or chunks."""
    def fill() -> None:
        chunk = s.recv(65536)
        assert chunk, bytes(pending)
        pending.extend(chunk)

    while b"\r\n\r\n" not in pending:
        fill()
    end = pending.index(b"\r\n\r\n") + 4
    head = bytes(pending[:end]).decode("latin-1").lower()
    del pending[:end]
    status = int(head[9:12])
    if head_only or status in (204, 304):
        return status, b""
    if "transfer-encoding: chunked" in head:
        body = b""
        while True:
            while b"\r\n" not in pending:
                fill()
            line = pending.index(b"\r\n")
            size = int(bytes(pending[:line]), 16)
            while len(pending) < line + 2 + size + 2:
                fill()
            body += bytes(pending[line + 2:line + 2 + size])
            del pending[:line + 2 + size + 2]
            if size == 0:
                return status, body
    length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
    while len(pending) < length:
        fill()
    body = bytes(pending[:length])
    del pending[:length]
    return status, body


# (request, expected status, expected body or None to skip, is HEAD)
EXCHANGES = {
    "main": ((b"GET / HTTP/1.1\r\nHost: main.demo.localhost:%d\r\n\r\n" % PORT), 200, b"page main\n", False),
    "auth": ((b"GET /?a=1 HTTP/1.1\r\nHost: feat-auth.demo.localhost:%d\r\nAccept: */*\r\n\r\n" % PORT), 200,
             b"page feat/auth\n", False),
    "echo": ((b"POST /echo HTTP/1.1\r\nHost: main.demo.localhost:%d\r\nContent-Length: 3\r\n\r\nxyz" % PORT), 200, b"xyz", False),
    "head": ((b"HEAD / HTTP/1.1\r\nHost: main.demo.localhost:%d\r\n\r\n" % PORT), 200, b"", True),
    "big": ((b"GET /big?n=70000 HTTP/1.1\r\nHost: main.demo.localhost:%d\r\n\r\n" % PORT), 200, b"x" * 70000, False),
    "chunked": ((b"GET /big?n=5000&chunked=1 HTTP/1.1\r\nHost: main.demo.localhost:%d\r\n\r\n" % PORT), 200, b"x" * 5000, False),
    "slow": ((b"GET /slow HTTP/1.1\r\nHost: main.demo.localhost:%d\r\n\r\n" % PORT), 200, b"slow\n", False),
    "missing": ((b"GET / HTTP/1.1\r\nHost: nope.demo.localhost:%d\r\n\r\n" % PORT), 404, None, False),
    "notfound": ((b"GET /nowhere HTTP/1.1\r\nHost: main.demo.localhost:%d\r\n\r\n" % PORT), 404, b"no\n", False),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.lists(st.sampled_from(sorted(EXCHANGES)), min_size=1, max_size=4), st.booleans()),
                min_size=1, max_size=6))
def test_any_mix_of_requests_on_one_connection_is_answered_in_order(site: tuple[Proxy, dict[str, Path]],
                                                                     batches: list[tuple[list[str], bool]]) -> None:
    """Batches of requests on one kept-alive connection, each batch sent before any of its answers is
    read: in one write, or one write per request. Every answer comes, in order, whatever the mix
    of pinned GETs and the general path's requests."""
    with socket.create_connection(("127.0.0.1", PORT), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one write, one segment
        pending = bytearray()
        for names, together in batches:
            if together:
                s.sendall(b"".join(EXCHANGES[n][0] for n in names))
            else:
                for n in names:
                    s.sendall(EXCHANGES[n][0])
                    time.sleep(0.005)
            for n in names:
                _, status, body, head_only = EXCHANGES[n]
                got = read_response(s, pending, head_only)
                assert got[0] == status and (body is None or got[1] == body), (n, got[0], got[1][:80])
    assert b"Traceback" not in site[0].log.read_bytes()


fuzz_header = st.one_of(
    st.sampled_from([b"Host: main.demo.localhost:%d" % PORT, b"Host: feat-auth.demo.localhost:%d" % PORT,
                     b"Connection: Upgrade",
                     b"Upgrade: websocket", b"Connection: close", b"Content-Length: 0", b"Content-Length: 3",
                     b"Transfer-Encoding: chunked", b"Expect: 100-continue", b"X-Forwarded-For: 10.0.0.1", b"Accept: */*"]),
    st.builds(lambda k, v: k + b":" + v,
              st.sampled_from([b"Host", b"Content-Length", b"Connection", b"Upgrade", b"X", b""]),
              st.sampled_from([b" 0", b" chunked", b" close", b" upgrade", b"", b"\x00", b" \xff"])),
    st.binary(max_size=20),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([b"GET / HTTP/1.1", b"GET /headers HTTP/1.1", b"POST /echo HTTP/1.1", b"HEAD / HTTP/1.1",
                        b"GET / HTTP/1.0", b"GET  / HTTP/1.1", b"GET /ws HTTP/1.1"]),
       st.lists(fuzz_header, max_size=5), st.binary(max_size=16))
def test_fuzzed_requests_after_a_good_one_never_crash_the_proxy(site: tuple[Proxy, dict[str, Path]], first: bytes,
                                                                  headers: list[bytes], tail: bytes) -> None:
    """The second request on a connection is where the hot path looks first: whatever it is, the
    proxy answers or closes, and keeps serving."""
    with socket.create_connection(("127.0.0.1", PORT), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: main.demo.localhost:%d\r\n\r\n" % PORT)
        got = b""
        while not got.endswith(b"page main\n"):
            chunk = s.recv(65536)
            assert chunk
            got += chunk
        s.sendall(first + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + tail)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(0.5)  # a request that waits for a body it will never get: not the proxy's to end
        try:
            while s.recv(65536):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    assert request("main.demo.localhost")[2] == b"page main\n"
    assert b"Traceback" not in site[0].log.read_bytes()  # no error escaped, not even one a transport caught


def test_pages_people_see(site: tuple[Proxy, dict[str, Path]], docker: DockerAPI) -> None:
    _, trees = site
    status, _, index = request("localhost")
    assert status == 200
    for host in ("main.demo.localhost", "feat-auth.demo.localhost", "feat-cart.demo.localhost"):
        assert f"http://{host}:{PORT}/".encode() in index
    status, _, missing = request("nope.demo.localhost")
    assert status == 404 and b"feat-auth.demo.localhost" in missing
    for host in ("evil.example", "localhost.evil.example", "127.0.0.2"):
        assert request(host)[0] == 403
    # nothing listening inside: 502 naming branch and container
    stop_backend = ("import os, signal\nfor p in filter(str.isdigit, os.listdir('/proc')):\n"
                    "    if int(p) != os.getpid() and b'backend.py' in open(f'/proc/{p}/cmdline', 'rb').read():\n"
                    "        os.kill(int(p), signal.SIGTERM)")
    assert dual("exec", "python3", "-c", stop_backend, cwd=trees["feat/auth"]).returncode == 0
    status, _, page = wait_for(lambda: (r := request("feat-auth.demo.localhost"))[0] == 502 and r)
    assert b"feat/auth" in page and b"dual-demo-demo-auth-" in page and b"git dual exec" in page
    assert b"nothing listens on port %d inside the container" % PORT in page  # as the container's sockets say
    # a server listening on 127.0.0.1 inside (Vite's, Django's and Flask's default), which Docker's
    # published port cannot reach: the agent's relay does, so it answers at its URL
    local = f"nohup python3 -m http.server {PORT} --bind 127.0.0.1 >/dev/null 2>&1 &"
    assert dual("exec", "sh", "-c", local, cwd=trees["feat/auth"]).returncode == 0
    wait_for(lambda: request("feat-auth.demo.localhost")[0] == 200)
    # a stopped container: 502 saying how to start it
    assert dual("down", cwd=trees["feat/cart"]).returncode == 0
    status, _, page = wait_for(lambda: (r := request("feat-cart.demo.localhost"))[0] == 502 and b"exited" in r[2] and r)
    assert b"git dual up" in page and b"feat/cart" in page


def test_removed_worktree_loses_its_container_without_a_command(site: tuple[Proxy, dict[str, Path]],
                                                                 docker: DockerAPI, repo: Path) -> None:
    _, trees = site
    query = json.dumps({"label": [f"dualgit.worktree={trees['feat/cart']}"]})
    assert docker.get("/containers/json", {"all": 1, "filters": query})
    git("worktree", "remove", "--force", str(trees["feat/cart"]), cwd=repo)
    wait_for(lambda: not docker.get("/containers/json", {"all": 1, "filters": query}), timeout=10)


def test_bad_requests_and_limits(site: tuple[Proxy, dict[str, Path]]) -> None:
    def raw(data: bytes, wait: float = 10) -> bytes:
        with socket.create_connection(("127.0.0.1", PORT), timeout=wait) as s:
            s.sendall(data)
            out = b""
            try:
                while chunk := s.recv(65536):
                    out += chunk
            except TimeoutError:
                pass
            return out

    assert raw(b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(b"GET / HTTP/1.1\r\nHost: main.demo.localhost\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
               ).startswith(b"HTTP/1.1 400")
    assert raw(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    assert raw(b"GET / HTTP/1.1\r\nHost: localh").startswith(b"HTTP/1.1 408")  # the head timeout (3 s here)
    assert request("main.demo.localhost")[0] == 200


def test_a_thousand_slow_clients_do_not_block_a_healthy_request(site: tuple[Proxy, dict[str, Path]]) -> None:
    slow = []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: ma")  # and then nothing more
            slow.append(s)
        status, _, body = request("main.demo.localhost")
        assert (status, body) == (200, b"page main\n")
        # all of them are still connected: the healthy request did not wait for their time-out
        assert all(s.fileno() >= 0 for s in slow)
    finally:
        for s in slow:
            s.close()


def test_busy_port_is_named_and_others_work(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    other = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", other))
    holder.listen()
    try:
        write_config(repo, f'image = "busybox:latest"\nports = [{PORT}, {other}]\n')
        assert dual("up", cwd=repo).returncode == 0
        (repo / "www").mkdir()
        (repo / "www" / "index.html").write_text("busybox page\n")
        assert dual("exec", "httpd", "-p", str(PORT), "-h", str(repo / "www"), cwd=repo).returncode == 0
        proxy = Proxy(repo, tmp_path / "proxy.log")
        proxy.start()
        try:
            status = dual("proxy", "status", cwd=repo)
            assert f"port {other} is busy on this host (pid " in status.stdout, status.stdout
            assert f"pid {os.getpid()}: " in status.stdout
            assert request("main.demo.localhost")[2] == b"busybox page\n"
            holder.close()  # whatever held the port lets go: it is served, with no event needed
            deadline = time.monotonic() + 15
            busy = "is busy on this host"
            while busy in (status := dual("proxy", "status", cwd=repo)).stdout and time.monotonic() < deadline:
                time.sleep(0.5)
            assert f":{other}" in status.stdout and busy not in status.stdout, status.stdout
            assert request("main.demo.localhost", port=other)[0] == 502  # the proxy's page: nothing listens inside
        finally:
            proxy.stop()
    finally:
        holder.close()




def test_the_daemon_starts_once_and_stops(repo: Path, tmp_path: Path) -> None:
    """`proxy start` detaches a daemon with its pid and log under the user's state dir; a second
    start finds it; `stop` ends it and `status` says so (exit 3)."""
    state = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state)}
    started = dual("proxy", "start", cwd=repo, env=env)
    try:
        assert started.returncode == 0, started.stderr
        pid_text = (state / "dualgit" / "proxy.pid").read_text()
        pid = int(pid_text.split()[0])
        # its dualgit's version and engine too: an upgrade, or `proxy start` for another engine, replaces it
        assert pid_text == f"{pid} {__version__} {DockerAPI().endpoint.url()}\n"
        assert started.stdout == f"proxy running (pid {pid}); log: {state / 'dualgit' / 'proxy.log'}\n"
        supervisor = int((state / "dualgit" / "proxy.supervisor.pid").read_text().split()[0])
        assert os.getsid(pid) == supervisor == os.getsid(supervisor)  # a session of its own: it outlives the shell
        assert dual("proxy", "start", cwd=repo, env=env).stdout == started.stdout
        assert json.loads(dual("proxy", "status", "--json", cwd=repo, env=env).stdout)["pid"] == pid
        assert f"proxy ready (pid {pid}, dualgit {__version__})" in (state / "dualgit" / "proxy.log").read_text()
        assert dual("proxy", "status", cwd=repo, env=env).stdout.startswith(f"proxy running (pid {pid}, dualgit {__version__})\n")
    finally:
        assert dual("proxy", "stop", cwd=repo, env=env).stdout == "proxy stopped\n"
    status = dual("proxy", "status", cwd=repo, env=env)
    assert status.returncode == 3 and status.stdout.startswith("the proxy is not running")
    assert not (state / "dualgit" / "proxy.pid").exists() and not alive(supervisor)
    assert dual("proxy", "stop", cwd=repo, env=env).stdout == "the proxy was not running\n"


def test_a_killed_proxy_is_back_within_seconds_and_stop_means_stop(site: tuple[Proxy, dict[str, Path]],
                                                                    tmp_path: Path) -> None:
    """The daemon is supervised: after kill -9 it serves again with no dualgit command run; `proxy
    start` meanwhile never reports the dead one; `proxy stop` stops the supervisor too."""
    proxy, trees = site
    proxy.stop()  # the fixture's foreground proxy: this test wants the daemon
    state = Path.home() / ".local" / "state"  # the one the site's containers were made under: its proxy serves them
    env: dict[str, str] = {}
    assert dual("proxy", "start", cwd=trees["main"], env=env).returncode == 0
    try:
        wait_for(lambda: request("feat-auth.demo.localhost")[0] == 200)
        for _ in range(2):
            pid = int((state / "dualgit" / "proxy.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            started = dual("proxy", "start", cwd=trees["main"], env=env)  # at once: never the dead pid
            assert started.returncode == 0 and f"(pid {pid})" not in started.stdout, started.stdout + started.stderr
            assert wait_for(lambda: request("feat-auth.demo.localhost")[2] == b"page feat/auth\n", every=0.05)
            back = time.monotonic() - killed
            print(f"served again {back:.2f} s after kill -9")
            status = json.loads(dual("proxy", "status", "--json", cwd=trees["main"], env=env).stdout)
            assert status["running"] and status["pid"] != pid and status["supervisor"]["restarts"] >= 1
        log = (state / "dualgit" / "proxy.log").read_text()
        assert log.count("supervisor: the proxy was killed by SIGKILL") == 2, log
    finally:
        assert dual("proxy", "stop", cwd=trees["main"], env=env).stdout == "proxy stopped\n"
    status = json.loads(dual("proxy", "status", "--json", cwd=trees["main"], env=env).stdout)
    assert not status["running"] and status["supervisor"] is None  # stop waited for it: nothing is left to restart
    with pytest.raises(OSError):
        request("feat-auth.demo.localhost")


def test_a_proxy_that_keeps_dying_is_backed_off_and_said(repo: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state), "DUALGIT_PROXY_HEAD_TIMEOUT": "not a number"}  # every start fails
    started = dual("proxy", "start", cwd=repo, env=env, timeout=60)
    try:
        assert started.returncode == 1 and "the proxy did not start" in started.stderr
        status = dual("proxy", "status", cwd=repo, env=env)
        assert status.returncode == 3 and "backs off: the proxy keeps dying (exited with status 3)" in status.stdout, \
            status.stdout
        info = json.loads(dual("proxy", "status", "--json", cwd=repo, env=env).stdout)["supervisor"]
        assert info["crash_loop"] and 3 <= info["restarts"] <= 8  # backed off, not a tight loop
        assert "backing off: next start in" in (state / "dualgit" / "proxy.log").read_text()
    finally:
        assert dual("proxy", "stop", cwd=repo, env=env).stdout == "proxy stopped\n"
    assert json.loads(dual("proxy", "status", "--json", cwd=repo, env=env).stdout)["supervisor"] is None

def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_after_an_upgrade_the_older_proxy_is_replaced_and_a_newer_one_kept(repo: Path, docker: DockerAPI,
                                                                           tmp_path: Path) -> None:
    """A running proxy whose pid file names no version (as before versions were written) is replaced
    by the next command that makes sure the proxy runs, in the background; one that names a newer
    version than this dualgit is left alone, so that two installs of different versions do not take turns."""
    state = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state), "DUALGIT_PROXY": "1"}
    pidfile = state / "dualgit" / "proxy.pid"
    assert dual("proxy", "start", cwd=repo, env=env).returncode == 0
    try:
        old = int(pidfile.read_text().split()[0])
        pidfile.write_text(f"{old}\n")  # what a proxy of an older dualgit wrote
        status = dual("proxy", "status", cwd=repo, env=env).stdout
        assert f"proxy running (pid {old}, dualgit (older))" in status and "replaces the proxy" in status, status
        assert dual("up", cwd=repo, env=env).returncode == 0
        wait_for(lambda: pidfile.exists() and pidfile.read_text().split()[1:2] == [__version__] and not alive(old))
        new = int(pidfile.read_text().split()[0])
        log = (state / "dualgit" / "proxy.log").read_text()
        assert f"replacing the proxy of dualgit (older) (pid {old}) with {__version__}'s" in log, log
        assert log.count(f"proxy ready (pid {new}, ") == 1

        pidfile.write_text(f"{new}\n")  # older again: `proxy start` replaces it too, and waits for the new one
        started = dual("proxy", "start", cwd=repo, env=env)
        newest = int(pidfile.read_text().split()[0])
        assert started.stdout.startswith(f"proxy running (pid {newest});") and newest != new and not alive(new)
        new = newest

        pidfile.write_text(f"{new} 999.0\n")  # a newer install's proxy
        assert dual("up", cwd=repo, env=env).returncode == 0
        time.sleep(1.5)
        assert alive(new) and pidfile.read_text() == f"{new} 999.0\n"
        assert "replaces" not in dual("proxy", "status", cwd=repo, env=env).stdout
        assert dual("proxy", "start", cwd=repo, env=env).stdout.startswith(f"proxy running (pid {new});")
    finally:
        dual("proxy", "stop", cwd=repo, env=env)


def test_a_privileged_port_says_what_to_do_and_others_work(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    """A container serving :80 (an nginx or apache image) on a host where ports under 1024 need
    privileges: the proxy, run here without CAP_NET_BIND_SERVICE, says how to get it served."""
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 80:
        pytest.skip("this host lets anyone listen on :80")
    drop = ("setpriv", "--bounding-set", "-net_bind_service") if os.geteuid() == 0 else ()
    write_config(repo, f'image = "busybox:latest"\nports = [80, {PORT}]\n')
    assert dual("up", cwd=repo).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log", wrapper=drop)
    proxy.start()  # once :PORT is served
    try:
        status = dual("proxy", "status", cwd=repo).stdout
        assert "cannot listen on port 80: Permission denied (ports under 1024 need privileges" in status, status
        assert "sysctl net.ipv4.ip_unprivileged_port_start=80`" in status
        assert request("main.demo.localhost")[0] == 502  # :PORT is served (nothing listens inside)
    finally:
        proxy.stop()


def test_an_engine_that_stops_answering_is_said_once_and_its_return_noticed(repo: Path, docker: DockerAPI,
                                                                            tmp_path: Path) -> None:
    """Docker Desktop quit for a day must not fill the proxy's log: one line when the engine is gone
    (the event watcher retries at 0.5, 1, 2 s...; each retry used to log twice), one when it is back."""
    engine = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not engine.startswith("unix://"):
        pytest.skip("the engine is reached over tcp here: no socket to hide and bring back")
    sock, log = tmp_path / "engine.sock", tmp_path / "proxy.log"  # no socket there yet: the engine is "gone"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["git", "dual", "proxy", "run"], cwd=repo, stdout=out, stderr=out,
                                env={**os.environ, "DOCKER_HOST": f"unix://{sock}"})
    try:
        wait_for(lambda: "proxy ready" in log.read_text())
        time.sleep(4)
        said = log.read_text()
        assert said.count("cannot reach the Docker engine") == 1, said
        assert "trying again until it answers" in said
        os.symlink(engine.removeprefix("unix://"), sock)  # the engine is back
        wait_for(lambda: "engine: answering again" in log.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_install_service_writes_a_unit_whose_command_runs_the_proxy(repo: Path, tmp_path: Path) -> None:
    """No user service manager runs here (as in CI): the unit is written and the command to enable it
    said; what its ExecStart runs is run here as systemd would, and serves."""
    config, state = tmp_path / "config", tmp_path / "state"
    env = {"XDG_CONFIG_HOME": str(config), "XDG_STATE_HOME": str(state)}
    written = json.loads(dual("proxy", "install-service", "--json", cwd=repo, env=env).stdout)
    unit = config / "systemd" / "user" / "dualgit-proxy.service"
    assert written["unit"] == str(unit) and unit.exists()
    text = unit.read_text()
    assert "Restart=on-failure" in text and f"Environment=XDG_STATE_HOME={state}" in text
    if not written["enabled"]:
        assert written["next"] == "systemctl --user daemon-reload && systemctl --user enable --now dualgit-proxy.service"
        exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))[len("ExecStart="):]
        proc = subprocess.Popen(shlex.split(exec_start), env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            status = wait_for(lambda: (s := json.loads(dual("proxy", "status", "--json", cwd=repo, env=env).stdout))
                              ["running"] and s)
            assert status["pid"] == proc.pid and status["supervisor"] is None  # the service manager is its supervisor
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    removed = json.loads(dual("proxy", "uninstall-service", "--json", cwd=repo, env=env).stdout)
    assert removed == {"unit": str(unit), "removed": True} and not unit.exists()
    assert "no proxy service here" in dual("proxy", "uninstall-service", cwd=repo, env=env).stdout


def test_a_proxy_serves_its_own_users_containers_only(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    """An engine shared by users (or by the test suite's throwaway homes): each user's proxy serves
    the containers that user's dualgit made, so two proxies never fight over a port."""
    other_port = free_port()
    other = tmp_path / "other"
    other.mkdir()
    git("init", "-q", cwd=other)
    write_config(other, f'image = "busybox:latest"\nports = [{other_port}]\n')
    git("add", ".", cwd=other)
    git("commit", "-qm", "other", cwd=other)
    elsewhere = {"XDG_STATE_HOME": str(tmp_path / "another-user")}
    assert dual("up", cwd=other, env=elsewhere).returncode == 0
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\n')
    assert dual("up", cwd=repo).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        status = json.loads(dual("proxy", "status", "--json", cwd=repo).stdout)
        assert PORT in status["http_ports"] and other_port not in status["http_ports"], status
        assert [r["branch"] for r in json.loads(dual("urls", "--json", cwd=other, env=elsewhere).stdout)] == ["main"]
    finally:
        proxy.stop()
    assert dual("down", "--rm", cwd=other, env=elsewhere).returncode == 0
