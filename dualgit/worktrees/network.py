"""The network a branch's container joins: one where branches cannot reach each other.

On Docker's default bridge every container reaches every other's ports, so a compromised branch
could talk to another branch's dev server (and, once it has them, its database). dualgit's own
network, `dualgit`, is a bridge with inter-container traffic off
(`com.docker.network.bridge.enable_icc=false`): each container reaches the internet and the host's
published loopback ports through the proxy as before, and no other container. One network for all
branches also keeps 50 branches from using up the engine's address pools.

Podman's bridge has no such switch: its Docker API drops the option, so `dualgit` is made there
without it and left unused, as the engine's answer for next time. There each worktree gets a
network of its own, named as its container, with `isolate=true`, which keeps networks apart from
each other. It goes with the container.

The network carries `dualgit.network` (the shared one) or dualgit's repository and worktree labels
(a worktree's own). One of that name that dualgit did not make is never joined or touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError
from dualgit.worktrees import labels

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine

SHARED = "dualgit"
MARK = "dualgit.network"  # on the shared network: "isolated"
NO_ICC = {"com.docker.network.bridge.enable_icc": "false"}
ISOLATE = {"isolate": "true"}  # Podman (netavark): no traffic between this network and any other


def _foreign(name: str) -> DualgitError:
    return DualgitError(f"a network named {name} exists and is not dualgit's",
                        hint=f"rename or remove it yourself (`docker network rm {name}`); dualgit will not touch it")


class Refused(Exception):
    """The engine will not make a network with these options."""


def _made(api: Engine, name: str, marks: dict[str, str], options: dict[str, str]) -> dict[str, Any]:
    """The network `name` as the engine inspects it, made when missing."""
    try:
        return api.inspect_network(name)
    except ApiError as exc:
        if exc.status != 404:
            raise DualgitError(f"cannot inspect network {name}: {exc.message}") from None
    try:
        api.create_network(name, marks, options)
    except ApiError as exc:
        if "unsupported network option" in exc.message:
            raise Refused(exc.message) from None
        if exc.status != 409:  # 409: another dualgit run made it meanwhile
            raise DualgitError(f"cannot create network {name}: {exc.message}") from None
    return api.inspect_network(name)


def shared(api: Engine) -> str | None:
    """The shared isolated network's name, made when missing; None where the engine's bridge cannot
    turn inter-container traffic off (Podman refuses the option, or drops it without a word)."""
    try:
        found = _made(api, SHARED, {MARK: "isolated"}, NO_ICC)
    except Refused:
        return None
    if (found.get("Labels") or {}).get(MARK) != "isolated":
        raise _foreign(SHARED)
    if (found.get("Options") or {}).get("com.docker.network.bridge.enable_icc") != "false":
        return None  # made, and the option dropped: it stays, unused, as this engine's answer (one inspect next time)
    return SHARED


def own(api: Engine, name: str, repo: str, worktree: str) -> str:
    """A worktree's own isolated network (Podman), made when missing."""
    try:
        found = _made(api, name, {labels.REPO: repo, labels.WORKTREE: worktree}, ISOLATE)
    except Refused as exc:
        raise DualgitError(f"cannot create network {name}: {exc}") from None
    if not labels.owned(found.get("Labels"), repo):
        raise _foreign(name)
    return name


def network_for(api: Engine, name: str, repo: str, worktree: str) -> str:
    """The network the container `name` joins, made when missing."""
    return shared(api) or own(api, name, repo, worktree)


def forget(api: Engine, name: str, repo: str) -> None:
    """Remove a worktree's own network (where there is one, and it is dualgit's), after its container."""
    try:
        found = api.inspect_network(name)
    except ApiError:
        return
    if labels.owned(found.get("Labels"), repo):
        try:
            api.remove_network(name)
        except ApiError:
            pass  # still in use by a container that is going away; the next removal retries
