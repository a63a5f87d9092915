"""`git dual ls`: every worktree with its container, from one label-filtered list call."""

from __future__ import annotations

import json
import sys
import time

from dualgit.background import user_config_file
from dualgit.engine.find import DEFAULT
from dualgit.errors import DualgitError
from dualgit.worktrees import idle, status
from dualgit.worktrees.targets import listing


def ls(as_json: bool = False, folder: str | None = None) -> int:
    unreachable: DualgitError | None = None  # what this machine knows is listed still, and the exit says it
    try:
        _repo, api, containers, trees = listing(folder)
        table, over = status.table(trees, containers, api)
    except DualgitError as exc:
        if not exc.message.startswith("cannot reach"):
            raise
        from dualgit.engine.find import endpoint
        from dualgit.git import repository

        trees = repository.worktrees(repository.open_repo(folder))
        table, over, unreachable = status.unreachable(trees, endpoint().url(), exc.message), None, exc
    if unreachable is None:  # one engine of several out of reach: the others' branches are listed
        away = {row["engine_name"]: row["engine_error"] for row in table if row.get("engine_error")}
        if away:
            unreachable = DualgitError("; ".join(f"the engine {name} does not answer: {why}" for name, why in away.items()),
                                       hint="`git dual doctor` in one of its branches says what was tried")
    if as_json:
        print(json.dumps(table, indent=2))
        return _said(unreachable)
    lines: list[tuple[str, ...]] = [("BRANCH", "STATE", "SETUP", "SERVE", "CONTAINER", "PORTS", "SERVICES", "WORKTREE")]
    notes = []
    for row in table:
        branch = row["branch"] if row["branch"] is not None else f"(detached {row['head'][:7]})"
        ports = " ".join(f"{p}->{h}" for p, h in row["ports"].items()) or "-"
        setup = row["setup"] if row["setup"] != "failed" else f"failed: {row['setup_step']}"
        if row["setup"] == "running" and (row["setup_step"] or "").startswith(("seed ", "service ")):
            setup = row["setup_step"]  # `seed db`: what `exec` waits for
        serve = ", ".join(s["detail"] for s in row["serve"]) if row["state"] == "running" else ""
        state = row["state"]
        if row["sync"] is not None and row["sync"]["state"] != "synced":
            state = f"{state}, {row['sync']['state']}"
            if row["sync"]["state"] == "sync paused" and row["sync"]["error"]:
                notes.append(f"{branch}: sync paused: {row['sync']['error']} (it resumes by itself; "
                             "`git dual doctor` checks the way)")
        for copy in (row["sync"] or {}).get("conflicts", [])[-3:]:
            notes.append(f"{branch}: edited on both sides, both kept: {copy}")
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
        services = " ".join(f"{s['name']}:{s['health'] or s['state']}" for s in row["services"])
        lines.append((branch, state, "-" if setup == "none" else setup, serve or "-", row["container"], ports,
                      services or "-", row["worktree"]))
        for s in row["serve"]:
            if s["last_lines"]:
                notes.append(f"{branch}: serve :{s['port']} {s['detail']}; its last lines:")
                notes.extend(f"    {line}" for line in s["last_lines"])
        for port in row["undeclared"]:
            notes.append(f"{branch}: something listens on :{port} inside, which .dual.toml does not declare, so it "
                         f"has no URL: `{row['declare'][str(port)]}`, then `git dual up`")
    if not any(row["services"] for row in table):  # the column only where a branch has services
        lines = [(*line[:6], line[7]) for line in lines]
    if any(row["sync"] is not None or row["engine_name"] != DEFAULT for row in table):  # only where engines differ
        engines = ["ENGINE", *(row["engine_name"] if row["engine_name"] != DEFAULT else row["engine"] or "-"
                               for row in table)]
        lines = [(*line[:5], engine, *line[5:]) for line, engine in zip(lines, engines, strict=True)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    for line in lines:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])) + "  " + line[-1])
    if over is not None:
        notes.append(f"{over[0]} branches run, over max_running = {over[1]} ({user_config_file()}): none of the others is "
                     "idle enough to sleep")
    for note in notes:
        print(note)
    return _said(unreachable)


def _said(unreachable: DualgitError | None) -> int:
    """0, or with the engine out of reach, its error on stderr and 1 (the table above came from
    this machine's own records: git's worktrees, setup and sync)."""
    if unreachable is None:
        return 0
    print(unreachable.render(), file=sys.stderr)
    return 1
