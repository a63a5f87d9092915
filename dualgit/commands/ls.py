"""`git dual ls`: every worktree with its container, from one label-filtered list call."""

from __future__ import annotations

import json
from typing import Any

from dualgit import git
from dualgit.commands._context import reconciled
from dualgit.containers import Container
from dualgit.naming import container_name


def rows(trees: list[git.Worktree], containers: list[Container]) -> list[dict[str, Any]]:
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
            }
        )
    return out


def ls(as_json: bool = False, folder: str | None = None) -> int:
    repo, _api, containers = reconciled(folder)
    table = rows(git.worktrees(repo), containers)
    if as_json:
        print(json.dumps(table, indent=2))
        return 0
    lines = [("BRANCH", "STATE", "CONTAINER", "PORTS", "WORKTREE")]
    for row in table:
        branch = row["branch"] if row["branch"] is not None else f"(detached {row['head'][:7]})"
        ports = " ".join(f"{p}->{h}" for p, h in row["ports"].items()) or "-"
        lines.append((branch, row["state"], row["container"], ports, row["worktree"]))
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    for line in lines:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line[:4])) + "  " + line[4])
    return 0
