"""The commands of `git dual` as a flat list, read from the typer app: what the manual page and the
shells' tab completion are made from, so that neither lists a command or an option that is not there."""

from __future__ import annotations

from typing import Any

import typer
import typer.main


def commands(app: typer.Typer, width: int = 78) -> list[tuple[str, Any, Any]]:
    """(name, click command, its context) for every command of `app` (the CLI's, given by the CLI
    layer, which this module sits under), in the order `--help` lists them, groups opened:
    `git dual up`, ..., `git dual proxy run`. Typed Any: typer keeps its click in a private module."""
    top = typer.main.get_command(app)
    return _walk(top, _context(top, "git dual", None, width), "git dual", width)


def _walk(group: Any, ctx: Any, prefix: str, width: int) -> list[tuple[str, Any, Any]]:
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = _context(command, name, ctx, width)
        if hasattr(command, "list_commands"):
            found += _walk(command, sub, f"{prefix} {name}", width)
        else:
            found.append((f"{prefix} {name}", command, sub))
    return found


def _context(command: Any, name: str, parent: Any, width: int) -> Any:
    """The context a command runs in (its settings, such as -h, included), at a fixed width."""
    settings = {**command.context_settings, "terminal_width": width, "max_content_width": width}
    return command.context_class(command, info_name=name, parent=parent, **settings)
