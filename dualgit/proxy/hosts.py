"""Which branch a request is for: pure functions over the containers the engine lists.

The slug rule (documented in the README): lowercase ASCII; each run of any other character
becomes `-`; a short hash of the original is added when the slug was truncated to fit a DNS label
(63 characters), came out empty, or collides with another branch's slug in the same repository
(or another repository's name). A detached HEAD is named after its worktree's folder.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from dualgit.git.locate import read_head
from dualgit.naming import dns_label, repo_name
from dualgit.worktrees import agent
from dualgit.worktrees.inventory import Container, list_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from dualgit.engine.interface import Engine

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
TCP_PORT_BASE, TCP_PORT_SPAN = 20000, 10000


class Mark:
    """Set by the proxy's connections while bytes move for a branch; the idle clock (`sleep.py`)
    reads and clears it once a second. One attribute store per arrival: the hot path can afford it."""

    __slots__ = ("hot",)

    def __init__(self) -> None:
        self.hot = False


QUIET = Mark()  # for the connections that must not keep a branch awake (`sleep.quiet`): never read


@dataclass(frozen=True)
class Backend:
    container: Container
    repo: str  # the repository's slug
    branch: str  # the branch's slug (or the folder's, when detached)
    branch_name: str  # the branch as git says it, for pages
    mark: Mark = field(default_factory=Mark, compare=False)  # its container's, kept across rebuilds

    @property
    def running(self) -> bool:
        return self.container.state == "running"

    def host(self) -> str:
        return f"{self.branch}.{self.repo}.localhost"

    def published(self, port: int) -> int | None:
        """The loopback port Docker published for the container's `port`, if it runs."""
        if self.container.synced:  # forwarded by its sync process, whose ports are read fresh: it may restart
            from dualgit.worktrees.state import forwarded

            where = forwarded(self.container.name).get(str(port))
        else:
            where = self.container.ports.get(str(port))
        return int(where.rsplit(":", 1)[1]) if where else None

    def relayed(self, port: int) -> int | None:
        """The loopback port of the agent's relay to the container's 127.0.0.1:`port` (None: none)."""
        relay = agent.relay_port(self.container.http_ports, port)  # per request: no dict built
        return self.published(relay) if relay is not None else None


@dataclass(frozen=True)
class Resolution:
    kind: str  # "backend", "index", "not-found", "forbidden"
    backend: Backend | None = None
    reason: str = ""
    candidates: tuple[Backend, ...] = ()


@dataclass
class HostTable:
    backends: list[Backend] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_pair = {(b.branch, b.repo): b for b in self.backends}
        self.by_branch: dict[str, list[Backend]] = {}
        for b in self.backends:
            self.by_branch.setdefault(b.branch, []).append(b)

    def http_ports(self, asleep: Callable[[Backend], bool] | None = None) -> set[int]:
        """The ports the proxy listens on: every port a running container declares, and an asleep one's
        (`asleep`: whether a stopped backend sleeps, so that its next request wakes it)."""
        return {p for b in self.backends if b.running or (asleep is not None and asleep(b))
                for p in b.container.http_ports}

    def serving(self, port: int) -> list[Backend]:
        return [b for b in self.backends if port in b.container.http_ports]

    def resolve(self, host_header: str, port: int) -> Resolution:
        host = host_only(host_header)
        if host is None:
            return Resolution("forbidden", reason=f"Host {host_header!r} is not a localhost name")
        if host in LOOPBACK_NAMES:
            return Resolution("index")
        labels = host[: -len(".localhost")].split(".")
        if len(labels) == 2:
            backend = self.by_pair.get((labels[0], labels[1]))
        elif len(labels) == 1:
            matches = [b for b in self.by_branch.get(labels[0], []) if port in b.container.http_ports]
            if len(matches) > 1:
                return Resolution("not-found", reason=f"{labels[0]} is a branch of several repositories",
                                  candidates=tuple(matches))
            backend = matches[0] if matches else None
        else:
            backend = None
        if backend is None:
            return Resolution("not-found", reason=f"no branch answers to {host}", candidates=tuple(self.serving(port)))
        if port not in backend.container.http_ports:
            return Resolution("not-found", reason=f"{backend.host()} does not declare port {port}",
                              candidates=tuple(self.serving(port)))
        return Resolution("backend", backend)

    def tcp_targets(self) -> dict[int, tuple[Backend, int]]:
        """Stable host port -> (backend, container port), for every declared `tcp_ports` entry."""
        targets: dict[int, tuple[Backend, int]] = {}
        wanted = sorted(
            ((b, p) for b in self.backends for p in b.container.tcp_ports), key=lambda bp: (bp[0].host(), bp[1])
        )
        for backend, port in wanted:
            candidate = stable_tcp_port(backend.repo, backend.branch, port)
            while candidate in targets:
                candidate = TCP_PORT_BASE + (candidate - TCP_PORT_BASE + 1) % TCP_PORT_SPAN
            targets[candidate] = (backend, port)
        return targets

    def urls(self, repo_dir: str | None = None, worktree: str | None = None) -> list[dict[str, object]]:
        """{branch, port, url, label} for every declared port, of one repository or one worktree (label:
        devcontainer.json's portsAttributes', or null)."""
        rows: list[dict[str, object]] = []
        tcp = self.tcp_targets()
        for b in self.backends:
            if (repo_dir is not None and b.container.repo != repo_dir) or (worktree and b.container.worktree != worktree):
                continue
            named = b.container.port_labels
            for port in b.container.http_ports:
                rows.append({"branch": b.branch_name, "port": port, "url": f"http://{b.host()}:{port}/",
                             "label": named.get(str(port))})
            for host_port, (owner, port) in sorted(tcp.items()):
                if owner is b:
                    rows.append({"branch": b.branch_name, "port": port, "url": f"tcp://127.0.0.1:{host_port}",
                                 "label": named.get(str(port))})
        return rows


def host_only(header: str) -> str | None:
    """The Host header's name, lowercased and without its port, if it is a loopback name."""
    host = header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name = host[: end + 1] if end > 0 else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return name
    return None


def stable_tcp_port(repo: str, branch: str, port: int) -> int:
    """A host port derived from repository, branch and port alone, so it survives restarts."""
    return TCP_PORT_BASE + zlib.crc32(f"{repo}\0{branch}\0{port}".encode()) % TCP_PORT_SPAN


def current(api: Engine) -> HostTable:
    """The table as it is now: every dualgit container (one list call), branches read from git."""
    containers = list_all(api)
    return build(containers, branches_of(containers))


def branches_of(containers: list[Container]) -> dict[str, str | None]:
    """Each container's worktree and the branch git says it is on now (None: detached)."""
    return {c.worktree: read_head(c.gitdir)[0] for c in containers}


def build(containers: list[Container], branches: dict[str, str | None],
          marks: dict[str, Mark] | None = None) -> HostTable:
    """Backends with their slugs. `branches` maps a worktree path to its branch (None: detached),
    read live from git by the caller. `marks`: each container's activity mark, by name (made here
    for a container that has none yet)."""
    import os

    repos: dict[str, str] = {}
    for dir_ in sorted({c.repo for c in containers}):
        name = repo_name(dir_)
        repos[dir_] = dns_label(name, taken=dns_label(name) in repos.values(), unique=dir_)
    backends: list[Backend] = []
    taken: dict[str, set[str]] = {}
    for c in sorted(containers, key=lambda c: c.worktree):
        branch = branches.get(c.worktree)
        shown = branch if branch is not None else os.path.basename(c.worktree)
        used = taken.setdefault(c.repo, set())
        slug = dns_label(shown, taken=dns_label(shown) in used, unique=f"{shown}\0{c.worktree}")
        used.add(slug)
        mark = marks.setdefault(c.name, Mark()) if marks is not None else Mark()
        backends.append(Backend(c, repos[c.repo], slug, shown, mark))
    return HostTable(backends)
