"""A remote branch's ports on this machine's loopback: a listener here per port the container
declares (its HTTP and TCP ports and the agent's relays), each connection carried by an exec of
`nc 127.0.0.1 PORT` in the container, over the engine's own connection (`engine/pipe.bridge`).
Nothing is published on the engine's host: the container's ports are reached from inside its own
network namespace. The proxy finds these listeners where it would find published ports
(`inventory.Container.ports`), so a remote branch's URLs, WebSockets and TCP ports work as a
local one's."""

from __future__ import annotations

import socket
import threading

from dualgit.engine.api import DockerAPI
from dualgit.engine.pipe import bridge
from dualgit.worktrees import agent


class Forwards:
    def __init__(self, api: DockerAPI, container: str) -> None:
        self.api = api
        self.container = container
        self.listeners: dict[int, socket.socket] = {}

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
            threading.Thread(target=self._accept, args=(port, listener), daemon=True).start()

    def _accept(self, port: int, listener: socket.socket) -> None:
        command = [agent.BUSYBOX, "nc", "127.0.0.1", str(port)]
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=bridge, args=(self.api, self.container, command, conn), daemon=True).start()

    def close(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
