"""Built-in plugin: `[shared] files = [".env.local", "config/*.key"]` in `.dual.toml`. Files git
ignores (secrets, local settings) are copied from the main worktree into a new one by the hook, before
`git worktree add` returns (and again, for a worktree made without the hook, as the first setup step).
A file that is already there is left as it is."""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable
from typing import Any

from dualgit.hookspecs import Context, Step, hookimpl


@hookimpl
def dualgit_config_keys() -> dict[str, Any]:
    return {"shared": {"files": list[str]}}


def patterns(ctx: Context) -> list[str]:
    shared = ctx.config.get("shared", {})
    files = shared.get("files", []) if isinstance(shared, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError(f"`[shared] files` in {ctx.worktree}/.dual.toml must be a list of paths, like [\".env.local\"]")
    return files


@hookimpl
def dualgit_worktree_added(ctx: Context) -> None:
    if patterns(ctx):
        copy_shared(ctx, say=lambda _line: None)


def copy_shared(ctx: Context, say: Callable[[str], None] = print) -> None:
    source = ctx.main_worktree
    if source is None or os.path.realpath(source) == os.path.realpath(ctx.worktree):
        say("this is the main worktree: nothing to copy")
        return
    for pattern in patterns(ctx):
        if os.path.isabs(pattern) or ".." in pattern.split("/"):
            raise ValueError(f"`[shared] files` entry {pattern!r} must stay inside the worktree")
        matches = sorted(glob.glob(os.path.join(glob.escape(source), pattern), recursive=True))
        if not matches:
            say(f"{pattern}: not in {source}; skipped")
        for found in matches:
            rel = os.path.relpath(found, source)
            target = os.path.join(ctx.worktree, rel)
            if os.path.lexists(target):
                say(f"{rel}: already here; kept")
                continue
            # A container may have written either worktree (a symlinked folder, say): what is read
            # stays in the main worktree, and what is written in this one.
            if not _inside(os.path.dirname(found), source) or not _inside(os.path.dirname(target), ctx.worktree):
                say(f"{rel}: a folder on its way is a link out of the worktree; skipped")
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.isdir(found):
                shutil.copytree(found, target, symlinks=True)
            else:
                shutil.copy2(found, target, follow_symlinks=False)
            say(f"{rel}: copied from {source}")


def _inside(path: str, root: str) -> bool:
    """Whether `path`, symlinks resolved, is `root` or below it (a part not made yet counts as below)."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip("/") + "/")


@hookimpl
def dualgit_setup_steps(ctx: Context) -> list[Step]:
    return [Step(name="shared files", order=100, run=copy_shared)] if patterns(ctx) else []
