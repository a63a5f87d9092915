"""`exec true` through an open `git dual mcp` session (the SDK's stdio client, as an agent holds it)
against `docker exec C true`, interleaved in the same run. The session's start is paid once, and
timed apart.

    .venv/bin/python benchmarks/mcp_exec.py [--rounds 30]
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from _bench import BIN, ENV, cleanup, interleaved, new_repo, report, sh, timed
from anyio.from_thread import start_blocking_portal
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def main() -> None:
    from _bench import rounds_arg

    rounds = rounds_arg(30)
    repo = new_repo()
    try:
        sh("git", "dual", "install", cwd=repo)
        (repo / ".dual.toml").write_text('image = "busybox:latest"\n')
        with start_blocking_portal() as portal:
            params = StdioServerParameters(command=str(BIN / "git-dual"), args=["mcp"], cwd=str(repo), env=ENV)

            @asynccontextmanager
            async def session() -> AsyncIterator[ClientSession]:
                async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
                    await client.initialize()
                    yield client

            began = time.perf_counter()
            opened = portal.wrap_async_context_manager(session())
            client = opened.__enter__()
            start = time.perf_counter() - began

            async def call(tool: str, **arguments: Any) -> Any:
                result = await client.call_tool(tool, arguments)
                assert not result.is_error, result.content
                return result.structured_content

            made = portal.call(lambda: call("create_branch", branch="bench"))
            tree, name = made["worktree"], made["container"]

            def through_mcp() -> float:
                began = time.perf_counter()
                done = portal.call(lambda: call("exec", branch="bench", command=["true"]))
                assert done["exit_code"] == 0
                return time.perf_counter() - began

            medians = interleaved({
                "docker exec C true": lambda: timed("docker", "exec", name, "true", cwd=tree),
                "MCP exec true (open session)": through_mcp,
            }, rounds)
            report(f"exec, median of {rounds} interleaved runs", medians, "docker exec C true", goal=1.2)
            print(f"session start (once): {start * 1000:.0f} ms")
            opened.__exit__(None, None, None)
    finally:
        cleanup(repo)


if __name__ == "__main__":
    main()
