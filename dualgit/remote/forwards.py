"""A remote branch's ports on this machine's loopback: a listener here per port the container
declares (its HTTP and TCP ports and the agent's relays), each connection carried by an exec of
`nc 127.0.0.1 PORT` in the container, over the engine's own connection (`engine/pipe.join`).
Nothing is published on the engine's host: the container's ports are reached from inside its own
network namespace. The proxy finds these listeners where it would find published ports
(`inventory.Container.ports`), so a remote branch's URLs, WebSockets and TCP ports work as a
local one's.

Making an exec costs round trips to the engine (about 50 ms on loopback over ssh, more across a
network), so a few are made ahead for each port: each waits in a shell for one line, then becomes
`nc`. A connection takes one that is ready, and another is made behind it."""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any

from dualgit.engine.api import DockerAPI
from dualgit.engine.pipe import join
from dualgit.worktrees import agent

READY = 4  # execs kept ready per port (a browser opens six connections at once)
STALE = 50.0  # seconds a ready one is kept: older ones are made anew (each gives up by itself after WAIT)
WAIT = 60  # seconds a ready one's shell waits for its line


class Forwards:
    def __init__(self, api: DockerAPI, container: str) -> None:
        self.api = api
        self.container = container
        self.listeners: dict[int, socket.socket] = {}
        self.ready: dict[int, list[tuple[Any, bytes, float]]] = {}
        self.lock = threading.Lock()
        self.wanted: dict[int, threading.Event] = {}  # set: the port's filler should look again

    def ports(self) -> dict[str, str]:
        """Each container port and the loopback address here that reaches it."""
        return {str(p): "127.0.0.1:%d" % s.getsockname()[1] for p, s in sorted(self.listeners.items())}

    def want(self, ports: list[int], before: dict[str, str]) -> None:
        """Listen for each of `ports` (on the port it had `before`, when that is free)."""
        for port in ports:
            if port in self.listeners:
                continue
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            earlier = int(before.get(str(port), "0:0").rsplit(":", 1)[1])
            try:
                listener.bind(("127.0.0.1", earlier))
            except OSError:
                listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            self.listeners[port] = listener
            self.ready[port] = []
            self.wanted[port] = threading.Event()
            threading.Thread(target=self._accept, args=(port, listener), daemon=True).start()
            threading.Thread(target=self._fill, args=(port,), daemon=True).start()

    def _relay(self, port: int) -> list[str]:
        return [agent.BUSYBOX, "sh", "-c", f"read -t {WAIT} -r _ && exec {agent.BUSYBOX} nc 127.0.0.1 {port}"]

    def _fill(self, port: int) -> None:
        """Keep READY execs waiting for `port` while the container runs (a failure: wait, try again)."""
        while port in self.listeners:
            with self.lock:
                now = time.monotonic()
                fresh = [r for r in self.ready[port] if now - r[2] < STALE and _waiting(r[0])]
                for gone in (r for r in self.ready[port] if r not in fresh):
                    _end(gone[0])
                self.ready[port] = fresh
                short = READY - len(fresh)
            if short <= 0:
                self.wanted[port].wait(1.0)
                self.wanted[port].clear()
                continue
            made = [threading.Thread(target=self._make, args=(port,), daemon=True) for _ in range(short)]
            for thread in made:
                thread.start()
            for thread in made:
                thread.join()
            if len(self.ready.get(port, [])) < READY:  # some failed: asleep, or the engine out of reach
                time.sleep(1.0)

    def _make(self, port: int) -> None:
        try:
            sock, rest, _ = self.api.attach(self.container, self._relay(port))
        except Exception:  # noqa: BLE001 - said by the filler's count
            return
        with self.lock:
            if port in self.ready:
                self.ready[port].append((sock, rest, time.monotonic()))
                return
        sock.close()  # closed meanwhile

    def _take(self, port: int) -> tuple[Any, bytes] | None:
        with self.lock:
            while self.ready.get(port):
                sock, rest, _made = self.ready[port].pop(0)
                if _waiting(sock):
                    self.wanted[port].set()
                    return sock, rest
                _end(sock)
        if port in self.wanted:
            self.wanted[port].set()
        return None

    def _accept(self, port: int, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._carry, args=(port, conn), daemon=True).start()

    def _carry(self, port: int, conn: socket.socket) -> None:
        taken = self._take(port)
        if taken is None:
            try:
                taken = self.api.attach(self.container, self._relay(port))[:2]
            except Exception:  # noqa: BLE001 - the engine gone or refusing: the connection ends
                conn.close()
                return
        sock, rest = taken
        try:
            sock.sendall(b"\n")  # the shell's line: it becomes nc now
        except OSError:
            conn.close()
            sock.close()
            return
        join(sock, rest, conn)

    def close(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        with self.lock:
            for waiting in self.ready.values():
                for sock, _rest, _made in waiting:
                    _end(sock)
            self.ready.clear()


def _end(sock: Any) -> None:
    """Close a ready exec's stream, its stdin's end first: its shell's `read` sees it and exits
    (the engine does not end an exec whose client merely went away)."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sock.close()


def _waiting(sock: Any) -> bool:
    """Whether a ready exec still waits: nothing to read yet (its end, or output, means it is gone)."""
    try:
        fileno = sock.fileno()
    except (AttributeError, OSError):
        return True  # a stream with no descriptor of its own (TLS, ssh): trusted until used
    if fileno < 0:
        return False
    readable, _, _ = select.select([fileno], [], [], 0)
    return not readable
