"""`git dual install` and `git dual uninstall`."""

from __future__ import annotations

from dualgit import git
from dualgit import install as shims


def install(folder: str | None = None) -> int:
    for line in shims.install(git.open_repo(folder)):
        print(line)
    return 0


def uninstall(folder: str | None = None) -> int:
    for line in shims.uninstall(git.open_repo(folder)):
        print(line)
    return 0
