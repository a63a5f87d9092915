"""What the engine holds for a repository, as its list call describes it: `Container`, found by
label, and taken away. The container model (`containers`) makes them; `ls`, `urls`, reconcile
and the proxy only need this, and none of what making one takes (config, plugins, images)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dualgit.background import state_dir
from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError
from dualgit.worktrees import labels

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    state: str  # Docker's word: created, running, exited, paused, ...
    repo: str
    worktree: str
    gitdir: str
    spec: str
    image_id: str
    ports: dict[str, str] = field(default_factory=dict)  # "3000" -> "127.0.0.1:49153"
    http_ports: tuple[int, ...] = ()  # what its .dual.toml declared, from the labels
    tcp_ports: tuple[int, ...] = ()
    port_labels: dict[str, str] = field(default_factory=dict)  # a port -> what it is (portsAttributes' label)
    services: tuple[str, ...] = ()  # its services' names (`worktrees/services.py`)
    synced: bool = False  # its worktree is synced to an engine on another machine (`sync.py`)

    @classmethod
    def from_summary(cls, entry: dict[str, Any]) -> Container:
        """From one entry of the engine's list call (which carries labels, state and ports)."""
        tags = entry.get("Labels") or {}
        ports = {}
        for port in entry.get("Ports") or []:
            if port.get("PublicPort") and port.get("Type", "tcp") == "tcp" and ":" not in port.get("IP", ""):
                ports[str(port["PrivatePort"])] = f"{port.get('IP') or '127.0.0.1'}:{port['PublicPort']}"
        synced = tags.get(labels.SYNC) == "1"
        if synced and entry.get("State") == "running":  # its ports, forwarded here (`remote/forwards.py`)
            from dualgit.worktrees.state import forwarded

            ports = forwarded((entry.get("Names") or ["/?"])[0].lstrip("/"))
        return cls(
            id=entry["Id"],
            name=(entry.get("Names") or ["/?"])[0].lstrip("/"),
            state=entry.get("State", "unknown"),
            repo=tags.get(labels.REPO, ""),
            worktree=tags.get(labels.WORKTREE, ""),
            gitdir=tags.get(labels.GITDIR, ""),
            spec=tags.get(labels.SPEC, ""),
            image_id=entry.get("ImageID", ""),
            ports=dict(sorted(ports.items(), key=lambda kv: int(kv[0]))),
            http_ports=port_list(tags.get(labels.PORTS, "")),
            tcp_ports=port_list(tags.get(labels.TCP_PORTS, "")),
            port_labels=_port_labels(tags.get(labels.PORT_LABELS)),
            services=tuple(s for s in tags.get(labels.SERVICES, "").split(",") if s),
            synced=synced,
        )


def _port_labels(text: str | None) -> dict[str, str]:
    """The container's label of port labels: data it was made with, read as text only."""
    if not text:
        return {}
    import json

    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v)[:100] for k, v in found.items()} if isinstance(found, dict) else {}


def port_list(text: str) -> tuple[int, ...]:
    """A ports label's ports (`labels.PORTS`, `labels.TCP_PORTS`)."""
    return tuple(int(p) for p in text.split(",") if p.strip().isdigit())


def list_all(api: Engine) -> list[Container]:
    """Every dualgit container on this engine that is this user's (`labels.mine`), of every
    repository: one list call."""
    entries, here = api.containers(labels.filters(None)), state_dir()
    return [Container.from_summary(e) for e in entries
            if (e.get("Labels") or {}).get(labels.REPO) and labels.mine(e.get("Labels"), here)
            and not labels.service(e.get("Labels"))]


def list_containers(api: Engine, repo: str, worktree: str | None = None) -> list[Container]:
    """Every container of the repository (or of one worktree): one label-filtered list call."""
    entries = api.containers(labels.filters(repo, worktree))
    return [Container.from_summary(e) for e in entries
            if labels.owned(e.get("Labels"), repo) and not labels.service(e.get("Labels"))]


def killed_by_memory_cap(api: Engine, container: str) -> bool:
    """Whether a container that stopped was killed by its memory cap, as the engine says (one inspect)."""
    try:
        state = api.inspect_container(container).get("State", {})
    except (ApiError, DualgitError):
        return False
    return not state.get("Running") and bool(state.get("OOMKilled"))


def stop(api: Engine, container: Container) -> None:
    """Stop the container; one that is gone or stopped already (another process's work) is done."""
    try:
        api.stop(container.id, 3)
    except ApiError as exc:
        if exc.status != 404:
            raise DualgitError(f"cannot stop container {container.name}: {exc.message}")
    if container.services:  # after it: they live in its namespace
        stop_services(api, container.repo, container.worktree)


def remove(api: Engine, container: Container, volumes: bool = True) -> None:
    """Remove the container and, with `volumes`, the named volumes dualgit made for its worktree
    (its services' among them). Its services' containers go first: they live in its namespace."""
    if container.services:
        for found in listed(api, container.repo, container.worktree):
            remove_service(api, found)
    try:
        api.remove_container(container.id)
    except ApiError as exc:
        raise DualgitError(f"cannot remove container {container.name}: {exc.message}")
    from dualgit.worktrees import network  # removal is off the listing's path

    if container.synced:  # the process and helper that keep its files' volumes go with it (the volumes, as asked)
        from dualgit.worktrees import sync

        sync.stop(container.name)
        sync.remove_helper(api, container.name)

    network.forget(api, container.name, container.repo)
    if volumes:
        remove_volumes(api, container.repo, container.worktree)


def remove_volumes(api: Engine, repo: str, worktree: str) -> list[str]:
    found = api.volumes(labels.filters(repo, worktree))
    gone = []
    for volume in found:
        if labels.owned(volume.get("Labels"), repo):
            try:
                if api.remove_volume(volume["Name"]):
                    gone.append(volume["Name"])
            except ApiError:
                pass  # still in use by a container that is going away; the next reconcile retries
    return gone


# A branch's services' containers (`worktrees/services.py` makes them): listed, started, stopped, removed.

@dataclass(frozen=True)
class Running:
    """A service's container as the engine lists it."""
    id: str
    name: str
    service: str
    state: str
    spec: str
    health: str  # "healthy", "starting", "unhealthy", or "" when it has no check
    worktree: str  # the worktree whose branch it serves

    @classmethod
    def from_summary(cls, entry: dict[str, Any]) -> Running:
        tags = entry.get("Labels") or {}
        status = str(entry.get("Status") or "")
        health = next((h for h in ("healthy", "unhealthy", "starting") if f"({h})" in status
                       or f"(health: {h})" in status), "")
        return cls(entry["Id"], (entry.get("Names") or ["/?"])[0].lstrip("/"), tags.get(labels.SERVICE, ""),
                   entry.get("State", "unknown"), tags.get(labels.SPEC, ""), health, tags.get(labels.SERVICE_OF, ""))


def container_for(branch: str, service: str) -> str:
    from dualgit.naming import slug

    return f"{branch}-{slug(service)}"


def listed(api: Engine, repo: str, worktree: str | None = None) -> list[Running]:
    """The services' containers of a repository (or of one worktree's branch): one list call."""
    wanted = [f"{labels.REPO}={repo}", labels.SERVICE]
    if worktree is not None:
        wanted.append(f"{labels.SERVICE_OF}={worktree}")
    entries = api.containers({"label": wanted})
    return [Running.from_summary(e) for e in entries if labels.owned(e.get("Labels"), repo)]


def by_worktree(api: Engine, repo: str) -> dict[str, list[Running]]:
    """Each worktree's services' containers, for `ls`."""
    found: dict[str, list[Running]] = {}
    for running in listed(api, repo):
        found.setdefault(running.worktree, []).append(running)
    return found


def service_ports(container: Container) -> list[int]:
    """The ports of the container's services (each labelled with its service's name)."""
    return sorted(int(p) for p, label in container.port_labels.items() if label in container.services)


def start_services(api: Engine, repo: str, worktree: str) -> None:
    """Start a branch's stopped services, after its container (their namespace) started."""
    for found in listed(api, repo, worktree):
        try:
            if found.state == "paused":
                api.unpause(found.id)
            elif found.state != "running":
                api.start(found.id)
        except ApiError as exc:
            print(f"dualgit: warning: service {found.service} ({found.name}) does not start: {exc.message}",
                  file=sys.stderr)


def stop_services(api: Engine, repo: str, worktree: str, timeout: int = 10) -> None:
    """Stop a branch's services, after its container, all at once: a stop is the engine's wait for
    each to end (up to `timeout` seconds), and one slow service need not hold up the others."""
    live = [found for found in listed(api, repo, worktree) if found.state in ("running", "paused", "restarting")]
    failed: list[str] = []

    def one(found: Running) -> None:
        try:
            api.stop(found.id, timeout)
        except ApiError as exc:
            if exc.status != 404:
                failed.append(f"cannot stop service container {found.name}: {exc.message}")

    if len(live) == 1:
        one(live[0])
    elif live:
        import threading

        threads = [threading.Thread(target=one, args=(found,)) for found in live]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failed:
        raise DualgitError(failed[0])


def remove_service(api: Engine, found: Running) -> None:
    """Remove a service's container (its volumes go with the worktree's: `remove_volumes`)."""
    try:
        api.remove_container(found.id)
    except ApiError as exc:
        if exc.status != 404:
            raise DualgitError(f"cannot remove service container {found.name}: {exc.message}") from None


def logs_tail(api: Engine, container: str, lines: int = 10) -> str:
    from dualgit.engine.dockerpy import DockerPy
    from dualgit.engine.several import holding

    api = holding(api, container)
    engine = DockerPy(api.endpoint) if not isinstance(api, DockerPy) else api
    try:
        text: str = engine.api.logs(container, tail=lines).decode(errors="replace")
    except Exception:  # noqa: BLE001 - the tail is a courtesy: the error it goes with is what matters
        return ""
    return text.rstrip("\n")
