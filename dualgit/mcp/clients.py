"""`git dual mcp --print-config CLIENT`: the snippet that registers `git dual mcp` with an agent's
client, and the file it goes in. The command is git-dual's absolute path and the repository is an
argument, so the snippet works whatever folder and PATH the client starts servers with."""

from __future__ import annotations

import json
import os
import shutil
import sys

from dualgit.errors import DualgitError

CLIENTS = ("claude-code", "codex", "cursor", "vscode")


def command() -> str:
    """git-dual's absolute path: beside this interpreter (a venv, pipx), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "git-dual")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("git-dual") or "git-dual"


def snippet(client: str, folder: str) -> tuple[str, str]:
    """(the file it goes in, the text), for `client`."""
    cmd, args = command(), ["mcp", folder]
    if client == "claude-code":
        return (os.path.join(folder, ".mcp.json") + f" (or: claude mcp add --scope project dualgit -- {cmd} mcp {folder})",
                json.dumps({"mcpServers": {"dualgit": {"type": "stdio", "command": cmd, "args": args, "env": {}}}}, indent=2))
    if client == "codex":
        return (os.path.join(folder, ".codex", "config.toml") + " (a trusted project's), or ~/.codex/config.toml",
                f"[mcp_servers.dualgit]\ncommand = {json.dumps(cmd)}\nargs = {json.dumps(args)}\n")
    if client == "cursor":
        return (os.path.join(folder, ".cursor", "mcp.json"),
                json.dumps({"mcpServers": {"dualgit": {"command": cmd, "args": args}}}, indent=2))
    if client == "vscode":
        return (os.path.join(folder, ".vscode", "mcp.json"),
                json.dumps({"servers": {"dualgit": {"type": "stdio", "command": cmd, "args": args}}}, indent=2))
    raise DualgitError(f"no MCP client called {client!r}", hint=f"give one of {', '.join(CLIENTS)}")
