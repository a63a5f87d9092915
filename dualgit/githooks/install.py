"""`git dual install` / `uninstall`: dualgit's hook scripts in git's hooks dir (core.hooksPath honoured).

A foreign hook is kept as `<hook>.legacy` and run first by dualgit's script; uninstall puts it back as
it was. The scripts carry a marker (unchanged since the first version) so that dualgit knows its own.
"""

from __future__ import annotations

import os
import sys
from importlib import resources

from dualgit.background import atomic_write
from dualgit.errors import DualgitError
from dualgit.git import library, locate, repository

HOOKS = ("post-checkout",)
MARKER = b"dualgit hook shim (dualgit-shim-"


def hooks_dir(repo: repository.Repo) -> str:
    """Where git looks for hooks: `core.hooksPath` when set (relative to the worktree), else the
    common dir's `hooks`, shared by every worktree."""
    cwd = repo.workdir or repo.common_dir
    found = locate.hooks_dir(cwd)
    if found is None:
        raise DualgitError(f"git cannot say where the hooks go, run in {cwd}", hint="run `git rev-parse --git-path hooks` "
                           "there to see why")
    return found


def script(hook: str, python: str | None = None) -> bytes:
    template = resources.files("dualgit_hooks").joinpath(hook).read_bytes()
    return template.replace(b"@INSTALL_PYTHON@", (python or sys.executable).encode())


def is_ours(file: str) -> bool:
    try:
        with open(file, "rb") as f:
            return MARKER in f.read(4096)
    except OSError:
        return False


def install(repo: repository.Repo) -> list[str]:
    """Install every hook script; returns what it said it did. Twice is the same as once."""
    where = hooks_dir(repo)
    os.makedirs(where, exist_ok=True)
    said = []
    for hook in HOOKS:
        target = os.path.join(where, hook)
        legacy = target + ".legacy"
        wanted = script(hook)
        if os.path.lexists(target) and not is_ours(target):
            if os.path.lexists(legacy):
                raise DualgitError(
                    f"both {target} and {legacy} exist and neither is dualgit's",
                    hint=f"merge them into one, or move {legacy} away, then run `git dual install` again",
                )
            os.rename(target, legacy)
            said.append(f"kept your {hook} hook as {legacy}; it still runs first")
        current = _read(target)
        if current != wanted:
            atomic_write(target, wanted, 0o755)
            said.append(f"installed {target}")
    library.set_config(repo.workdir or repo.common_dir, "dual.enabled", True)
    return said or [f"already installed in {where}"]


def uninstall(repo: repository.Repo) -> list[str]:
    where = hooks_dir(repo)
    said = []
    for hook in HOOKS:
        target = os.path.join(where, hook)
        legacy = target + ".legacy"
        if is_ours(target):
            os.remove(target)
            said.append(f"removed {target}")
            if os.path.lexists(legacy):
                os.rename(legacy, target)
                said.append(f"restored your {hook} hook")
    library.unset_config(repo.workdir or repo.common_dir, "dual.enabled")
    return said or [f"no dualgit hooks in {where}"]


def _read(file: str) -> bytes | None:
    try:
        with open(file, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
