"""dualgit: every git worktree its own machine. Kept empty of imports: `git dual exec` starts here.

`from dualgit import hookimpl` is for plugins; it loads pluggy only when asked for."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]


def __getattr__(name: str) -> object:
    if name == "hookimpl":
        from dualgit.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'dualgit' has no attribute {name!r}")
