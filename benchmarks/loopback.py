"""A dev server that listens on 127.0.0.1 inside its container (Vite's default), reached through the
proxy and the agent's relay, against the same server on 0.0.0.0, reached through the proxy and
Docker's published port: end-to-end p50 (and p90) latency of sequential requests on a kept-alive
client connection, and of a new client connection per request. Goal: loopback <= 1.10x wildcard.

    .venv/bin/python benchmarks/loopback.py [--rounds 5] [--requests 2000]

One container (dualgit/debian:bookworm) runs the same Python HTTP/1.1 server twice: on 0.0.0.0:3000
and on 127.0.0.1:3001. The rounds take turns between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

from _bench import ENV, cleanup, new_repo, sh

SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # head and body in one write (flushed per request)
    disable_nagle_algorithm = True
    def do_GET(self):
        body = b"ok\\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


def read_response(s: socket.socket, pending: bytearray) -> None:
    while b"\r\n\r\n" not in pending:
        pending += s.recv(65536)
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += s.recv(65536)
    pending[:] = rest[length:]


def latencies(host: str, port: int, count: int, per_connection: bool) -> list[float]:
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    out = []
    s = None if per_connection else socket.create_connection(("127.0.0.1", port))
    pending = bytearray()
    for _ in range(count):
        started = time.perf_counter()
        conn = socket.create_connection(("127.0.0.1", port)) if per_connection else s
        assert conn is not None
        conn.sendall(request)
        read_response(conn, pending)
        out.append(time.perf_counter() - started)
        if per_connection:
            conn.close()
            pending.clear()
    if s is not None:
        s.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    given = parser.parse_args()
    repo = new_repo("loopback")
    (repo / ".dual.toml").write_text('image = "dualgit/debian:bookworm"\nports = [3000, 3001]\n')
    (repo / "server.py").write_text(SERVER)
    env = {**ENV, "DUALGIT_PROXY": "0"}
    proxy = None
    try:
        sh("git", "dual", "up", cwd=repo)
        for address, port in (("0.0.0.0", 3000), ("127.0.0.1", 3001)):
            subprocess.run(["git", "dual", "exec", "sh", "-c", f"nohup python3 server.py {address} {port} >/dev/null 2>&1 &"],
                           cwd=repo, env=env, check=True)
        name = json.loads(sh("git", "dual", "ls", "--json", cwd=repo))[0]["container"]
        state = Path(os.path.expanduser("~/.local/state/dualgit/containers")) / name / "listen"
        deadline = time.monotonic() + 20
        while "3001 loop" not in (state.read_text() if state.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.2)
        proxy = subprocess.Popen(["git", "dual", "proxy", "run"], cwd=repo, env=env, stderr=subprocess.DEVNULL)
        host = "main.loopback.localhost"
        for port in (3000, 3001):
            deadline = time.monotonic() + 20
            while True:
                try:
                    latencies(host, port, 5, False)
                    break
                except (OSError, StopIteration):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the proxy does not answer for {host}:{port}")
                    time.sleep(0.2)
        results: dict[tuple[str, int], list[float]] = {}
        for _ in range(given.rounds):
            for mode in ("keep-alive", "connection per request"):
                for port in (3000, 3001):
                    results.setdefault((mode, port), []).extend(
                        latencies(host, port, given.requests // (1 if mode == "keep-alive" else 4),
                                  mode != "keep-alive"))
        for mode in ("keep-alive", "connection per request"):
            wild, loop = results[(mode, 3000)], results[(mode, 3001)]
            p50w, p50l = statistics.median(wild), statistics.median(loop)
            p90w, p90l = (statistics.quantiles(v, n=10)[8] for v in (wild, loop))
            ratio = p50l / p50w
            print(f"\n{mode}, {len(wild)} requests each, through the proxy")
            print(f"  server on 0.0.0.0 (published port)    p50 {p50w * 1e6:7.0f} us  p90 {p90w * 1e6:7.0f} us  1.00x")
            print(f"  server on 127.0.0.1 (agent's relay)   p50 {p50l * 1e6:7.0f} us  p90 {p90l * 1e6:7.0f} us  "
                  f"{ratio:.2f}x  (goal <= 1.10x: {'met' if ratio <= 1.10 else 'NOT met'})")
    finally:
        if proxy is not None:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(timeout=10)
        cleanup(repo)


if __name__ == "__main__":
    main()
