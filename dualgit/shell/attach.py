"""`git dual shell`'s command: the steps that run on attach (devcontainer.json's postAttachCommand),
then the shell, in the same process inside the container."""

from __future__ import annotations

from dualgit.git.locate import locate
from dualgit.shell.exec import SHELL

FAILED = "echo 'dualgit: an attach step failed (above); the shell opens all the same' >&2"


def command() -> list[str]:
    from dualgit.worktrees.plan import context_for, script, steps_for

    steps = [step for step in steps_for(context_for(locate())) if step.when == "attach"]
    attach = script(steps)
    if attach is None:
        return list(SHELL)
    return ["sh", "-c", f"( {attach}) || {FAILED}\n{SHELL[2]}"]
