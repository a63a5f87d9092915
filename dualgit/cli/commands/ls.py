"""`git dual ls`: every worktree with its container, from one label-filtered list call."""

from __future__ import annotations

import json
from typing import Any

from dualgit.cli.commands._context import listing
from dualgit.git import repository
from dualgit.naming import container_name
from dualgit.worktrees import setup_state
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
                "ports": container.ports if container else {},
                **_setup(container, container_name(wt.common_dir, wt.path)),
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
    lines = [("BRANCH", "STATE", "SETUP", "CONTAINER", "PORTS", "WORKTREE")]
    for row in table:
        branch = row["branch"] if row["branch"] is not None else f"(detached {row['head'][:7]})"
        ports = " ".join(f"{p}->{h}" for p, h in row["ports"].items()) or "-"
        setup = row["setup"] if row["setup"] != "failed" else f"failed: {row['setup_step']}"
        lines.append((branch, row["state"], "-" if setup == "none" else setup, row["container"], ports, row["worktree"]))
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    for line in lines:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line[:5])) + "  " + line[5])
    return 0
