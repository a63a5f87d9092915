"""`git dual ls`: every worktree with its container, from one label-filtered list call."""

from __future__ import annotations

import json
import time
from typing import Any

from dualgit.background import user_config_file
from dualgit.cli.commands._context import listing
from dualgit.git import repository
from dualgit.naming import container_name
from dualgit.worktrees import agent, idle, setup_state
from dualgit.worktrees.inventory import Container, killed_by_memory_cap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.engine.interface import Engine


def rows(trees: list[repository.Worktree], containers: list[Container], api: Engine | None = None,
         ) -> list[dict[str, Any]]:
    """A row per worktree. With `api`, a container that exited is asked whether its memory cap killed it."""
    by_path = {c.worktree: c for c in containers}
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
                **_setup(container, container_name(wt.common_dir, wt.path)),
                **(agent.seen(container.name, container.http_ports, container.tcp_ports) if container
                   else {"serve": [], "undeclared": [], "declare": {}}),
            }
        )
    return out


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


def ls(as_json: bool = False, folder: str | None = None) -> int:
    _repo, api, containers, trees = listing(folder)
    table = rows(trees, containers, api)
    over = over_cap(api)
    for row in table:
        row["over_max_running"] = {"running": over[0], "max_running": over[1]} if over else None
    if as_json:
        print(json.dumps(table, indent=2))
        return 0
    lines = [("BRANCH", "STATE", "SETUP", "SERVE", "CONTAINER", "PORTS", "WORKTREE")]
    notes = []
    for row in table:
        branch = row["branch"] if row["branch"] is not None else f"(detached {row['head'][:7]})"
        ports = " ".join(f"{p}->{h}" for p, h in row["ports"].items()) or "-"
        setup = row["setup"] if row["setup"] != "failed" else f"failed: {row['setup_step']}"
        serve = ", ".join(s["detail"] for s in row["serve"]) if row["state"] == "running" else ""
        state = row["state"]
        if row["asleep_since"] is not None:
            state = f"asleep {idle.ago(time.time() - row['asleep_since'])}"
        elif row["out_of_memory"]:
            state = f"{state} (out of memory)"
            notes.append(f"{branch}: its container was killed by its memory cap: raise it (`git dual config set memory 2g`), "
                         "then `git dual up`")
        for s in row["serve"]:
            if s["oom"]:
                notes.append(f"{branch}: serve :{s['port']} was killed by its memory cap: "
                             "raise it: `git dual config set memory 2g`")
        lines.append((branch, state, "-" if setup == "none" else setup, serve or "-", row["container"], ports,
                      row["worktree"]))
        for s in row["serve"]:
            if s["last_lines"]:
                notes.append(f"{branch}: serve :{s['port']} {s['detail']}; its last lines:")
                notes.extend(f"    {line}" for line in s["last_lines"])
        for port in row["undeclared"]:
            notes.append(f"{branch}: something listens on :{port} inside, which .dual.toml does not declare, so it "
                         f"has no URL: `{row['declare'][str(port)]}`, then `git dual up`")
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    for line in lines:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line[:6])) + "  " + line[6])
    if over is not None:
        notes.append(f"{over[0]} branches run, over max_running = {over[1]} ({user_config_file()}): none of the others is "
                     "idle enough to sleep")
    for note in notes:
        print(note)
    return 0
