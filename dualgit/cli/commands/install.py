"""`git dual install` and `git dual uninstall`."""

from __future__ import annotations

from dualgit.git import repository
from dualgit.githooks import install as githooks


def install(folder: str | None = None) -> int:
    for line in githooks.install(repository.open_repo(folder)):
        print(line)
    return 0


def uninstall(folder: str | None = None) -> int:
    for line in githooks.uninstall(repository.open_repo(folder)):
        print(line)
    return 0
