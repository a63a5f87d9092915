"""What the command line's commands share beyond `worktrees.targets`: acting on several worktrees."""

from __future__ import annotations

import sys
from collections.abc import Callable

from dualgit.errors import EXIT_ERROR, DualgitError


def for_each(targets: list[str] | None, act: Callable[[str | None], None]) -> int:
    """`act` on each worktree named (here, when none is): of several, one refused is said in its own
    error and hint, and the rest still go; the exit code is 1 when any was refused."""
    names: list[str | None] = list(targets or []) or [None]
    failed = 0
    for target in names:
        try:
            act(target)
        except DualgitError as exc:
            if len(names) == 1:
                raise
            print(exc.render(), file=sys.stderr)
            failed += 1
    return EXIT_ERROR if failed else 0
