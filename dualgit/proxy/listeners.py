"""The proxy's listening sockets, kept in step with the host table: an HTTP listener on every port
a running (or sleeping) branch declares, a raw TCP one on each `tcp_ports` target's stable port.
A port busy on this host is named, with the process that holds it where the host says, and tried
again every BUSY_RETRY seconds."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable

from dualgit.proxy import hosts, sleep
from dualgit.proxy.relay import ClientConnection
from dualgit.proxy.say import log
from dualgit.proxy.state import ServerState
from dualgit.proxy.tcp import TcpClient

BUSY_RETRY = 5.0  # seconds between tries of the ports that were busy, while any is


class Listeners:
    def __init__(self, state: ServerState, changed: Callable[[], None]) -> None:
        self.state = state
        self.changed = changed  # told when what listens changed (the status file follows)
        self.http: dict[int, list[asyncio.AbstractServer]] = {}
        self.tcp: dict[int, list[asyncio.AbstractServer]] = {}
        self.tcp_opening: set[int] = set()  # listeners being opened: a refresh meanwhile does not open them twice
        self.tcp_targets: dict[int, tuple[hosts.Backend, int]] = {}
        self.busy: dict[int, str] = {}  # ports wanted but taken on this host, and why
        self.busy_retry: asyncio.TimerHandle | None = None

    async def sync_http(self) -> None:
        wanted = self.state.routes.table.http_ports(self.state.sleeper.asleep)
        for port in sorted(set(self.http) - wanted):
            for server in self.http.pop(port):
                server.close()
            log(f"closed :{port}")
        loop = asyncio.get_running_loop()
        state = self.state
        for port in sorted(wanted - set(self.http)):  # busy ones too: they may be free by now
            servers = await self._listen(port, lambda p=port: ClientConnection(state, p, loop))  # type: ignore[misc]
            if servers:
                self.http[port] = servers
                log(f"listening on :{port}")
        for port in list(self.busy):
            if port not in wanted and port not in self.tcp_targets:
                del self.busy[port]
        self._retry_busy_later()

    def sync_tcp(self) -> None:
        sleeper = self.state.sleeper
        targets = {p: r for p, r in self.state.routes.table.tcp_targets().items() if r[0].running or sleeper.asleep(r[0])}
        self.tcp_targets = targets
        for port in sorted(set(self.tcp) - set(targets)):
            for server in self.tcp.pop(port):
                server.close()
        missing = sorted(set(targets) - set(self.tcp))
        if missing:
            asyncio.get_running_loop().create_task(self._open_tcp(missing))

    async def sync(self) -> None:
        """Listeners for the current table, without reading the engine or git again."""
        await self.sync_http()
        self.sync_tcp()
        self.changed()

    async def _open_tcp(self, ports: list[int]) -> None:
        for port in ports:
            if port in self.tcp or port in self.tcp_opening:
                continue
            self.tcp_opening.add(port)
            try:
                servers = await self._listen(port, lambda p=port: TcpClient(lambda: self._tcp_target(p),  # type: ignore[misc]
                                                                            self.state.connections))
            finally:
                self.tcp_opening.discard(port)
            if servers and port not in self.tcp_targets:  # the target went while its listener opened
                for server in servers:
                    server.close()
            elif servers:
                self.tcp[port] = servers
                target = self.tcp_targets.get(port)
                log(f"listening on :{port} (tcp" + (f": {target[0].branch_name} :{target[1]})" if target else ")"))
        self._retry_busy_later()
        self.changed()

    async def _tcp_target(self, port: int) -> tuple[int, hosts.Mark] | None:
        """The published port a `tcp_ports` listener pipes to, and its branch's mark; an asleep branch
        is woken first (the client's bytes wait meanwhile)."""
        sleeper = self.state.sleeper
        target = self.tcp_targets.get(port)
        if target is not None and sleeper.asleep(target[0]):
            try:
                await asyncio.wait_for(asyncio.shield(sleeper.wake(target[0])), sleep.HOLD_FOR)
            except TimeoutError:
                return None
            target = self.tcp_targets.get(port)
            if target is not None:  # what serves it may take a moment more: a database, say
                await sleep.until_listening(target[0].container.name, [target[1]], sleep.TCP_WAIT)
        if target is None:
            return None
        published = target[0].published(target[1])
        return (published, target[0].mark) if published is not None else None

    async def _listen(self, port: int, factory: Callable[[], asyncio.Protocol]) -> list[asyncio.AbstractServer]:
        loop = asyncio.get_running_loop()
        servers: list[asyncio.AbstractServer] = []
        for host in ("127.0.0.1", "::1"):
            try:
                servers.append(await loop.create_server(factory, host, port, backlog=1024))
            except OSError as exc:
                if host == "::1" and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    continue  # no IPv6 loopback on this host
                if port not in self.busy:  # said once, not at every retry (naming the holder reads /proc)
                    self.busy[port] = message = listen_failure(port, exc)
                    log(message)
                for server in servers:
                    server.close()
                return []
        self.busy.pop(port, None)
        return servers

    def _retry_busy_later(self) -> None:
        """While a wanted port is busy, try it again every BUSY_RETRY seconds: it is served as soon as
        whatever held it lets go, with no event needed."""
        if self.busy and self.busy_retry is None:
            self.busy_retry = asyncio.get_running_loop().call_later(BUSY_RETRY, self._retry_busy)

    def _retry_busy(self) -> None:
        self.busy_retry = None
        asyncio.get_running_loop().create_task(self.sync())

    def close(self) -> None:
        for servers in (*self.http.values(), *self.tcp.values()):
            for server in servers:
                server.close()


def listen_failure(port: int, exc: OSError) -> str:
    """Why a wanted port is not served, and what to do about it, in one line."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is busy on this host{holder(port)}: its branches are not served there"
    message = f"cannot listen on port {port}: {os.strerror(exc.errno) if exc.errno else exc}"  # uvloop's strerror is long
    if exc.errno == errno.EACCES and port < 1024:
        message += (" (ports under 1024 need privileges on this host: have the server listen on 1024 or above,"
                    f" or allow it with `sudo sysctl net.ipv4.ip_unprivileged_port_start={port}`)")
    return message


def holder(port: int) -> str:
    """` (pid 123: node)`, when this host lets us see who listens on the port (Linux /proc)."""
    try:
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        with open(f"/proc/{pid}/comm") as f:
                            return f" (pid {pid}: {f.read().strip()})"
            except OSError:
                continue
    except (OSError, ValueError, IndexError):
        pass
    return ""
