"""`git dual mcp`: the MCP server on stdio, or with --print-config the snippet that registers it."""

from __future__ import annotations

import json
import os
import sys

from dualgit.git import repository


def mcp(folder: str | None, client: str | None, as_json: bool = False) -> int:
    here = os.path.realpath(folder or os.getcwd())
    if client is None:
        from dualgit.mcp.server import serve

        return serve(here)
    from dualgit.mcp.clients import snippet

    root = repository.open_repo(here).workdir or here
    where, text = snippet(client, root)
    if as_json:
        print(json.dumps({"client": client, "file": where, "snippet": text}, indent=2))
        return 0
    print(f"# {client}: put this in {where}", file=sys.stderr)
    print(text)
    return 0
