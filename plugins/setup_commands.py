"""Built-in plugin: `setup = ["npm ci", "npm run build"]` in `.dual.toml`, run in order inside the
worktree's container (through `sh -c`) when it is made."""

from __future__ import annotations

from dualgit.hookspecs import Context, Step, hookimpl


@hookimpl
def dualgit_config_keys() -> list[str]:
    return ["setup"]


@hookimpl
def dualgit_setup_steps(ctx: Context) -> list[Step]:
    commands = ctx.config.get("setup", [])
    if isinstance(commands, str):
        commands = [commands]
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise ValueError(f"`setup` in {ctx.worktree}/.dual.toml must be a list of commands, like [\"npm ci\"]")
    return [Step(name=f"setup {i + 1}: {cmd}", order=600 + i, command=cmd) for i, cmd in enumerate(commands)]
