"""Git through libgit2 (pygit2), for the commands nobody times: installing and removing the hooks'
switch (`dual.enabled`) and the dirty check of `git dual rm`. The paths people wait on (exec, the
hook, the shims, `ls`, `urls`) read git's files with the standard library (`locate`, `repository`)
and never import this module; `tests/test_lean.py` holds them to that."""

from __future__ import annotations

import pygit2

from dualgit.errors import DualgitError


def _open(folder: str) -> pygit2.Repository:
    try:
        return pygit2.Repository(folder)
    except (pygit2.GitError, KeyError) as exc:
        raise DualgitError(f"git cannot open the repository at {folder}: {exc}",
                           hint=f"run `git status` in {folder} to see why") from None


def set_config(folder: str, key: str, value: bool | str) -> None:
    """Write `key` in the repository's config (the common one, for any of its worktrees)."""
    _open(folder).config[key] = value


def unset_config(folder: str, key: str) -> None:
    config = _open(folder).config
    if key in config:
        del config[key]


def dirty_files(worktree: str) -> list[str]:
    """What `git worktree remove` would refuse to lose: files modified (staged or not) or untracked,
    ignored ones left out; sorted."""
    ignored = pygit2.enums.FileStatus.IGNORED
    return sorted(path for path, flags in _open(worktree).status().items() if not flags & ignored)
