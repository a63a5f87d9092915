"""How each worktree of a repository stands: its container, sleep, setup and dev servers, as `ls`
prints them and the MCP server's `list_branches` returns them."""

from __future__ import annotations

from typing import Any

from dualgit.background import user_config_file
from dualgit.git import repository
from dualgit.naming import container_name
from dualgit.worktrees import agent, idle, setup_state, state
from dualgit.worktrees.inventory import Container, Running, by_worktree, killed_by_memory_cap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.engine.interface import Engine


def rows(trees: list[repository.Worktree], containers: list[Container], api: Engine | None = None,
         ) -> list[dict[str, Any]]:
    """A row per worktree. With `api`, a container that exited is asked whether its memory cap killed it."""
    by_path = {c.worktree: c for c in containers}
    held: dict[str, list[Running]] = {}
    if api is not None and any(c.services for c in containers):
        held = by_worktree(api, containers[0].repo)
    out = []
    for wt in trees:
        container = by_path.get(wt.path)
        asleep = idle.asleep_since(container.name) if container and container.state == "exited" else None
        out.append(
            {
                "branch": wt.branch,
                "head": wt.head,
                "worktree": wt.path,
                "main": wt.main,
                "locked": wt.locked,
                "container": container.name if container else container_name(wt.common_dir, wt.path),
                "state": ("asleep" if asleep is not None else container.state) if container else "missing",
                "asleep_since": asleep,
                "out_of_memory": bool(api and container and container.state in ("exited", "dead") and asleep is None
                                      and killed_by_memory_cap(api, container.id)),
                "ports": agent.own_ports(container) if container else {},
                "services": _services(container, held.get(wt.path, [])) if container else [],
                **_engine(api, container_name(wt.common_dir, wt.path), container is not None),
                "sync": _sync(container.name, container.synced) if container else None,
                **_setup(container, container_name(wt.common_dir, wt.path)),
                **(agent.seen(container.name, container.http_ports, container.tcp_ports) if container
                   else {"serve": [], "undeclared": [], "declare": {}}),
            }
        )
    return out


def _engine(api: Engine | None, name: str, listed: bool) -> dict[str, Any]:
    """`engine`: the URL of the engine the worktree's container is on; `engine_name`: as dualgit's
    config named it ("default": the one found as the docker CLI finds it); with `engine_error`, and
    state `unreachable` when it has no container listed, an engine that did not answer."""
    named = state.engine_of(name)
    found: dict[str, Any] = {"engine": None, "engine_name": named}
    members = getattr(api, "members", None)
    if api is None:
        return found
    if members is None:
        return {**found, "engine": api.endpoint.url()}
    member = members.get(named)
    found["engine"] = member.endpoint.url() if member is not None else None
    why = getattr(api, "missing", {}).get(named)
    if why is not None:
        found["engine_error"] = why
        if not listed:
            found["state"] = "unreachable"
    return found


def unreachable(trees: list[repository.Worktree], engine: str, why: str) -> list[dict[str, Any]]:
    """The rows `ls` can give while the engine is out of reach: git's worktrees, and what this
    machine knows of each (its setup, its sync, paused meanwhile); state `unreachable`."""
    out: list[dict[str, Any]] = []
    for wt in trees:
        name = container_name(wt.common_dir, wt.path)
        synced = state.sync_status(name) is not None
        out.append({"branch": wt.branch, "head": wt.head, "worktree": wt.path, "main": wt.main, "locked": wt.locked,
                    "container": name, "state": "unreachable", "asleep_since": None, "out_of_memory": False,
                    "ports": {}, "services": [], "engine": engine, "engine_name": state.engine_of(name),
                    "engine_error": why,
                    "sync": _sync(name, synced), **_setup(None, name), "serve": [], "undeclared": [], "declare": {},
                    "over_max_running": None})
    return out


def _sync(name: str, synced: bool) -> dict[str, Any] | None:
    """A remote worktree's sync: `state` (sync, synced, sync paused), since when, why it is paused,
    and the conflict copies it made; None for a worktree the engine binds."""
    if not synced:
        return None
    found = state.sync_status(name)
    if found is None:  # made just now: its sync process is starting
        return {"state": "sync", "since": None, "error": None, "conflicts": []}
    return {"state": state.sync_word(found) or "synced", "since": found.get("since"), "error": found.get("error"),
            "conflicts": found.get("conflicts") or []}


def _services(container: Container, found: list[Running]) -> list[dict[str, Any]]:
    """Each of the branch's services: its name, state (Docker's word, or `missing`), health and container."""
    by_name = {r.service: r for r in found}
    return [{"name": name, "state": by_name[name].state if name in by_name else "missing",
             "health": by_name[name].health or None if name in by_name else None,
             "container": by_name[name].name if name in by_name else None} for name in container.services]


def over_cap(api: Engine) -> tuple[int, int] | None:
    """(branches running, max_running) when the user's cap is exceeded, across every repository."""
    import os

    if not os.path.exists(user_config_file()):
        return None
    from dualgit.config import load_user
    from dualgit.worktrees.inventory import list_all

    cap = load_user().max_running
    if not cap:
        return None
    running = sum(1 for c in list_all(api) if c.state == "running")
    return (running, cap) if running > cap else None


def _setup(container: Container | None, name: str) -> dict[str, str | None]:
    """`setup`: none, running, done or failed; `setup_step`: the step running, or the one that failed.
    With no container yet, what stands before it: the hook's pull of an image (`pull IMAGE`)."""
    state = setup_state.read(name)
    if container is None and not state.before_container:
        return {"setup": "none", "setup_step": None}  # none, or a removed container's
    if container is not None and state.container_id and state.container_id != container.id:
        return {"setup": "none", "setup_step": None}
    return {"setup": state.status, "setup_step": state.step or None}


def table(trees: list[repository.Worktree], containers: list[Container], api: Engine,
          ) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
    """`rows`, each with `over_max_running` (null, or running and max_running when the user's cap is
    exceeded), and that pair."""
    out = rows(trees, containers, api)
    over = over_cap(api)
    for row in out:
        row["over_max_running"] = {"running": over[0], "max_running": over[1]} if over else None
    return out, over
