"""Why nothing answers on a container's port: its listening sockets, read from inside.

A 502 is most often a dev server that is not started, or one that listens on 127.0.0.1 inside the
container (Vite, Django, Flask and Rails do by default), where Docker's published port cannot reach
it. The container's /proc/net/tcp and tcp6 tell the two apart; the engine runs `cat` to read them
(the proxy may not see the container's /proc: Docker Desktop runs containers in a VM).
"""

from __future__ import annotations

from dataclasses import dataclass

from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.engine.interface import Engine

LISTEN = "0A"  # the socket state in /proc/net/tcp
HEADER = "local_address"
IPV6_LOOPBACK = "00000000000000000000000001000000"  # ::1 as /proc prints it: four host-order words


@dataclass(frozen=True)
class Listening:
    """Who listens on the port inside: on an address every interface reaches, on loopback only."""

    wildcard: bool
    loopback: tuple[str, ...]  # as people write them: 127.0.0.1, ::1


def listening(proc_net_tcp: str, port: int) -> Listening | None:
    """Parse the text of /proc/net/tcp and tcp6 (either or both); None when it is not that text."""
    if HEADER not in proc_net_tcp:
        return None
    wildcard, loopback = False, []
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN or ":" not in fields[1]:
            continue
        address, _, hex_port = fields[1].partition(":")
        try:
            if int(hex_port, 16) != port:
                continue
        except ValueError:
            continue
        if address == IPV6_LOOPBACK:
            loopback.append("::1")
        elif len(address) == 8 and address.endswith("7F"):  # 127.x.x.x in host order: little-endian (x86-64, arm64)
            loopback.append(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
        else:
            wildcard = True  # 0.0.0.0, ::, or the container's own address: the published port reaches it
    return Listening(wildcard, tuple(dict.fromkeys(loopback)))


def explain(found: Listening | None, port: int) -> tuple[str, str] | None:
    """What to tell the person at the browser: the reason, and the fix. None: no more than before."""
    if found is None or found.wildcard:
        return None  # unknown, or a server that listens and still closed: the generic words fit
    if found.loopback:
        where = " and ".join(f"{a}:{port}" if ":" not in a else f"[{a}]:{port}" for a in found.loopback)
        return (f"a server listens on {where} inside the container, which Docker's published port cannot reach",
                f"Have it listen on 0.0.0.0:{port}: for example `vite --host 0.0.0.0`, `next dev -H 0.0.0.0`, "
                f"`manage.py runserver 0.0.0.0:{port}`, `flask run --host 0.0.0.0`, `rails server -b 0.0.0.0`.")
    return f"nothing listens on port {port} inside the container", ""


def read_sockets(api: Engine, container: str, timeout: float = 3.0, cat: list[str] | None = None) -> str:
    """The container's /proc/net/tcp and tcp6, read by `cat` (or the command `cat`) inside it; ""
    when that fails (no cat, a container stopping, an engine that does not answer)."""
    try:
        _code, data = api.run(container, [*(cat or ["cat"]), "/proc/net/tcp", "/proc/net/tcp6"], timeout=timeout)
    except (DualgitError, ApiError, OSError):
        return ""
    return data.decode("latin-1")
