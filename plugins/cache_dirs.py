"""Built-in plugin: `cache_dirs = ["node_modules", ".venv"]` in `.dual.toml`. Each is a named volume
per worktree, mounted over that folder of the worktree: it survives the container being made anew
and goes away with the worktree."""

from __future__ import annotations

import os
from typing import Any

from dualgit.hookspecs import ContainerSettings, Context, hookimpl


@hookimpl
def dualgit_config_keys() -> dict[str, Any]:
    return {"cache_dirs": list[str]}


@hookimpl
def dualgit_container_settings(ctx: Context) -> ContainerSettings | None:
    dirs = ctx.config.get("cache_dirs", [])
    if not isinstance(dirs, list) or not all(isinstance(d, str) and d.strip("/") for d in dirs):
        raise ValueError(f"`cache_dirs` in {ctx.worktree}/.dual.toml must be a list of folders, like [\"node_modules\"]")
    if not dirs:
        return None
    for d in dirs:
        if os.path.isabs(d) or ".." in d.split("/"):
            raise ValueError(f"`cache_dirs` entry {d!r} must be a folder inside the worktree")
    return ContainerSettings(volumes={d.strip("/"): os.path.join(ctx.worktree, d.strip("/")) for d in dirs})
