"""`git dual ls`: every worktree with its container, from one label-filtered list call."""

from __future__ import annotations

import json
from typing import Any

from dualgit.cli.commands._context import listing
from dualgit.git import repository
from dualgit.naming import container_name
from dualgit.worktrees import agent, setup_state
from dualgit.worktrees.inventory import Container


def rows(trees: list[repository.Worktree], containers: list[Container]) -> list[dict[str, Any]]:
    by_path = {c.worktree: c for c in containers}
    out = []
    for wt in trees:
        container = by_path.get(wt.path)
        out.append(
            {
                "branch": wt.branch,
                "head": wt.head,
                "worktree": wt.path,
                "main": wt.main,
                "locked": wt.locked,
                "container": container.name if container else container_name(wt.common_dir, wt.path),
                "state": container.state if container else "missing",
                "ports": agent.own_ports(container) if container else {},
                **_setup(container, container_name(wt.common_dir, wt.path)),
                **(agent.seen(container.name, container.http_ports, container.tcp_ports) if container
                   else {"serve": [], "undeclared": [], "declare": {}}),
            }
        )
    return out


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
    _repo, _api, containers, trees = listing(folder)
    table = rows(trees, containers)
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
        lines.append((branch, row["state"], "-" if setup == "none" else setup, serve or "-", row["container"], ports,
                      row["worktree"]))
        for s in row["serve"]:
            if s["last_lines"]:
                notes.append(f"{branch}: serve :{s['port']} {s['detail']}; its last lines:")
                notes.extend(f"    {line}" for line in s["last_lines"])
        for port in row["undeclared"]:
            notes.append(f"{branch}: something listens on :{port} inside, which .dual.toml does not declare, so it "
                         f"has no URL: write `{row['declare'][str(port)]}` in .dual.toml, then `git dual up`")
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    for line in lines:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line[:6])) + "  " + line[6])
    for note in notes:
        print(note)
    return 0
