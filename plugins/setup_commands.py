"""Built-in plugin: `setup = ["npm ci", "npm run build"]` in `.dual.toml`, run in order inside the
worktree's container (through `sh -c`) when it is made, as the container's user. An entry may be a
table, `{ run = "apt-get install -y jq", root = true }`, for a step that must run as root."""

from __future__ import annotations

from typing import Any

from dualgit.hookspecs import Context, Step, hookimpl

SHAPE = 'a list of commands, like ["npm ci"] (an entry may be { run = "apt-get install -y jq", root = true })'


@hookimpl
def dualgit_config_keys() -> dict[str, Any]:
    return {"setup": str | list[str | dict[str, Any]]}


def _entry(item: Any, where: str) -> tuple[str, bool]:
    if isinstance(item, str):
        return item, False
    if isinstance(item, dict) and isinstance(item.get("run"), str) and set(item) <= {"run", "root"} \
            and isinstance(item.get("root", False), bool):
        return item["run"], bool(item.get("root", False))
    raise ValueError(f"`setup` in {where}/.dual.toml must be {SHAPE}; {item!r} is not")


@hookimpl
def dualgit_setup_steps(ctx: Context) -> list[Step]:
    commands = ctx.config.get("setup", [])
    if isinstance(commands, str | dict):
        commands = [commands]
    if not isinstance(commands, list):
        raise ValueError(f"`setup` in {ctx.worktree}/.dual.toml must be {SHAPE}")
    entries = [_entry(item, ctx.worktree) for item in commands]
    return [Step(name=f"setup {i + 1}: {cmd}" + (" (as root)" if root else ""), order=600 + i, command=cmd, root=root)
            for i, (cmd, root) in enumerate(entries)]
