"""dualgit: every git worktree its own machine. Kept empty of imports: `git dual exec` starts here."""

__version__ = "0.1.0"
