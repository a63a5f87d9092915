"""What the engine holds for a repository, as its list call describes it: `Container`, found by
label, and taken away. The container model (`containers`) makes them; `ls`, `urls`, reconcile
and the proxy only need this, and none of what making one takes (config, plugins, images)."""

from __future__ import annotations

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

    @classmethod
    def from_summary(cls, entry: dict[str, Any]) -> Container:
        """From one entry of the engine's list call (which carries labels, state and ports)."""
        tags = entry.get("Labels") or {}
        ports = {}
        for port in entry.get("Ports") or []:
            if port.get("PublicPort") and port.get("Type", "tcp") == "tcp" and ":" not in port.get("IP", ""):
                ports[str(port["PrivatePort"])] = f"{port.get('IP') or '127.0.0.1'}:{port['PublicPort']}"
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
            http_ports=_port_list(tags.get(labels.PORTS, "")),
            tcp_ports=_port_list(tags.get(labels.TCP_PORTS, "")),
            port_labels=_port_labels(tags.get(labels.PORT_LABELS)),
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


def _port_list(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(",") if p.strip().isdigit())


def list_all(api: Engine) -> list[Container]:
    """Every dualgit container on this engine that is this user's (`labels.mine`), of every
    repository: one list call."""
    entries, here = api.containers(labels.filters(None)), state_dir()
    return [Container.from_summary(e) for e in entries
            if (e.get("Labels") or {}).get(labels.REPO) and labels.mine(e.get("Labels"), here)]


def list_containers(api: Engine, repo: str, worktree: str | None = None) -> list[Container]:
    """Every container of the repository (or of one worktree): one label-filtered list call."""
    entries = api.containers(labels.filters(repo, worktree))
    return [Container.from_summary(e) for e in entries if labels.owned(e.get("Labels"), repo)]


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


def remove(api: Engine, container: Container, volumes: bool = True) -> None:
    """Remove the container and, with `volumes`, the named volumes dualgit made for its worktree."""
    try:
        api.remove_container(container.id)
    except ApiError as exc:
        raise DualgitError(f"cannot remove container {container.name}: {exc.message}")
    from dualgit.worktrees import network  # removal is off the listing's path

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
