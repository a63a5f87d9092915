"""`git dual mcp` driven by the official SDK's stdio client session, on real git and a real engine:
the tools as an agent calls them, the schemas as the SDK checks them, and the errors an agent gets."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import BIN, dual, git
from dualgit.engine.api import DockerAPI

TOOLS = {"list_branches", "create_branch", "remove_branch", "exec", "logs", "urls", "up", "down", "sleep", "inspect"}
WAIT = 120  # seconds a gate waits before it fails its test: a deadlock guard, not a timing


@asynccontextmanager
async def session(folder: Path, env: dict[str, str] | None = None) -> Any:
    params = StdioServerParameters(command=str(BIN / "git-dual"), args=["mcp"], cwd=str(folder),
                                   env={**os.environ, **(env or {})})
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


def run(folder: Path, scenario: Callable[[ClientSession], Awaitable[None]], env: dict[str, str] | None = None) -> None:
    async def main() -> None:
        async with session(folder, env) as client:
            await scenario(client)

    anyio.run(main)


async def call(client: ClientSession, tool: str, **arguments: Any) -> Any:
    """A tool's structured result (the SDK has checked it against the tool's output schema)."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def refused(client: ClientSession, tool: str, **arguments: Any) -> str:
    """A tool error's text, which must be one line."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text = result.content[0].text  # type: ignore[union-attr]
    assert "\n" not in text, text
    return text


def gate(name: str, ident: str) -> str:
    """A command that marks itself started (a file in its worktree), then waits for `go` there."""
    return (f"touch .started-{name}-{ident}; i=0; until [ -e .go-{name} ]; do sleep 0.1; i=$((i+1)); "
            f"[ $i -gt {WAIT * 10} ] && exit 9; done; echo {ident}")


async def until(check: Callable[[], bool]) -> None:
    with anyio.fail_after(WAIT):
        while not check():
            await anyio.sleep(0.05)


@pytest.fixture
def installed(repo: Path, docker: DockerAPI) -> Path:
    assert dual("install", cwd=repo).returncode == 0
    return repo


def test_the_tools_as_an_agent_calls_them(installed: Path) -> None:
    repo = installed

    async def scenario(client: ClientSession) -> None:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        for tool in listed.tools:
            assert tool.description and tool.input_schema["type"] == "object", tool.name
        made = await call(client, "create_branch", branch="feat/a")
        assert made["state"] == "running" and made["branch"] == "feat/a"
        tree = Path(made["worktree"])
        assert tree == repo.parent / "demo-feat-a" and (tree / "README").exists()
        assert git("branch", "--show-current", cwd=tree).strip() == "feat/a"

        for command, code in ((["true"], 0), ("exit 42", 42), (["no-such-program"], 127)):
            done = await call(client, "exec", branch="feat/a", command=command)
            assert done["exit_code"] == code, (command, done)
        missing = await call(client, "exec", branch="feat/a", command=["no-such-program"])
        assert missing["stderr"] == "no-such-program: command not found\n"
        both = await call(client, "exec", branch=str(tree), command="cat; echo to-err >&2; pwd", stdin="from stdin\n")
        assert both["stdout"] == f"from stdin\n{tree}\n" and both["stderr"] == "to-err\n"
        (tree / "sub").mkdir()
        inside = await call(client, "exec", branch="feat/a", command=["sh", "-c", "pwd; echo $X"], folder="sub",
                            env={"X": "y"})
        assert inside["stdout"] == f"{tree}/sub\ny\n"
        big = await call(client, "exec", branch="feat/a", command="yes line | head -c 300000", max_output=4096)
        assert big["stdout_bytes"] == 300000 and len(big["stdout"]) < 4200
        assert "bytes cut by dualgit" in big["stdout"] and big["stdout"].endswith("line\n")

        rows = (await call(client, "list_branches"))["branches"]
        assert {r["branch"]: r["state"] for r in rows} == {"main": "missing", "feat/a": "running"}
        logs = await call(client, "logs", branch="feat/a")
        assert logs["state"] == "done" and "setup done" in logs["text"]
        made_from = await call(client, "inspect", branch="feat/a")
        assert made_from["image"] == "busybox:latest" and made_from["worktree"] == str(tree)
        urls = (await call(client, "urls", branch="feat/a"))["urls"]
        assert all(u["branch"] == "feat/a" for u in urls)

        asleep = await call(client, "sleep", branch="feat/a")
        assert asleep["state"] == "asleep"
        assert {r["branch"]: r["state"] for r in (await call(client, "list_branches"))["branches"]}["feat/a"] == "asleep"
        woke = await call(client, "exec", branch="feat/a", command="echo awake")
        assert woke["stdout"] == "awake\n"
        assert (await call(client, "down", branch="feat/a"))["state"] == "exited"
        assert (await call(client, "up", branch="feat/a"))["state"] == "running"

        (tree / "README").write_text("changed\n")
        said = await refused(client, "remove_branch", branch="feat/a")
        assert "README" in said and "force" in said
        assert tree.exists()
        gone = await call(client, "remove_branch", branch="feat/a", force=True)
        assert gone["removed"] and not tree.exists()
        assert not [c for c in DockerAPI().containers({"label": ["dualgit.worktree"]}) if str(tree) in json.dumps(c)]

    run(repo, scenario)


def test_calls_run_at_once(installed: Path) -> None:
    """Ten execs in ten branches, and ten in one, all started before any may end (each waits for a file
    that the test writes only once all ten have started); a waiting exec holds up no list_branches."""
    repo = installed
    names = [f"b{i}" for i in range(10)]

    async def scenario(client: ClientSession) -> None:
        trees = {}
        for name in names:
            trees[name] = Path((await call(client, "create_branch", branch=name))["worktree"])
        for round_, targets in (("many", names), ("one", ["b0"] * 10)):
            results: dict[int, Any] = {}

            async def one(i: int, branch: str, round_: str = round_, results: dict[int, Any] = results) -> None:
                results[i] = await call(client, "exec", branch=branch, command=gate(round_, str(i)))

            async with anyio.create_task_group() as group:
                for i, branch in enumerate(targets):
                    group.start_soon(one, i, branch)
                started = [trees[b] / f".started-{round_}-{i}" for i, b in enumerate(targets)]
                await until(lambda started=started: all(p.exists() for p in started))
                listed = await call(client, "list_branches")  # while ten execs wait
                assert len(listed["branches"]) == 11
                for tree in set(trees[b] for b in targets):
                    (tree / f".go-{round_}").touch()
            assert {i: r["stdout"] for i, r in results.items()} == {i: f"{i}\n" for i in range(10)}
            assert all(r["exit_code"] == 0 for r in results.values())

    run(repo, scenario)


def test_bad_input_is_one_line_that_names_the_fix(installed: Path, tmp_path: Path) -> None:
    repo = installed

    async def scenario(client: ClientSession) -> None:
        await call(client, "create_branch", branch="feat/b")
        said = await refused(client, "exec", branch="nope", command="true")
        assert "no worktree of demo" in said and "known: main, feat/b" in said
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        assert "no worktree of demo" in await refused(client, "exec", branch=str(outside), command="true")
        assert "leads out of the worktree" in await refused(client, "exec", branch="feat/b", command="true",
                                                            folder="../..")
        said = await refused(client, "exec", branch="feat/b", command="echo begun; sleep 30", timeout=1)
        assert "timed out after 1 s" in said and "'begun'" in said and "longer timeout" in said
        assert "already" in await refused(client, "create_branch", branch="feat/b")
        assert "not a valid branch name" in await refused(client, "create_branch", branch="a..b")
        assert "main worktree" in await refused(client, "remove_branch", branch="main")
        assert "no log called 'nothing'" in await refused(client, "logs", branch="feat/b", which="nothing")
        assert "out of range" in await refused(client, "exec", branch="feat/b", command="true", timeout=0)
        assert (await call(client, "exec", branch="feat/b", command="echo still here"))["stdout"] == "still here\n"

    run(repo, scenario)

    async def engine_down(client: ClientSession) -> None:
        said = await refused(client, "list_branches")
        assert "cannot reach the Docker engine" in said and ";" in said
        assert "cannot reach the Docker engine" in await refused(client, "exec", branch="main", command="true")

    run(repo, engine_down, env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})


def test_it_refuses_a_repository_without_the_hooks(repo: Path) -> None:
    done = subprocess.run([str(BIN / "git-dual"), "mcp"], cwd=repo, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and done.stdout == ""
    assert "hooks are not installed" in done.stderr and "git dual install" in done.stderr


def test_stdout_carries_protocol_only(installed: Path) -> None:
    """The raw wire, as a client reads it: every line on stdout is a JSON-RPC message, while the hook,
    git and the container print around a create, an exec and a remove."""
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "create_branch",
                                                                        "arguments": {"branch": "raw"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "exec", "arguments": {
            "branch": "raw", "command": "echo out; echo err >&2"}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "remove_branch",
                                                                        "arguments": {"branch": "raw"}}},
    ]
    server = subprocess.Popen([str(BIN / "git-dual"), "mcp"], cwd=installed, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert server.stdin and server.stdout
    answers = []
    for message in lines:
        server.stdin.write(json.dumps(message) + "\n")
        server.stdin.flush()
        if "id" in message:
            answers.append(json.loads(server.stdout.readline()))  # a line that is not JSON fails here
    server.stdin.close()
    rest = server.stdout.read()
    server.wait(timeout=60)
    assert rest == ""
    assert [a["id"] for a in answers] == [1, 2, 3, 4]
    assert all("error" not in a and not a["result"].get("isError") for a in answers), answers
    assert answers[2]["result"]["structuredContent"]["stdout"] == "out\n"


@pytest.mark.parametrize("client", ["claude-code", "codex", "cursor", "vscode"])
def test_print_config(repo: Path, client: str) -> None:
    done = dual("mcp", "--print-config", client, cwd=repo / "")
    assert done.returncode == 0, done.stderr
    settings = tomllib.loads(done.stdout)["mcp_servers"] if client == "codex" else json.loads(done.stdout)
    entry = (settings["servers"] if client == "vscode" else settings.get("mcpServers", settings))["dualgit"]
    assert os.access(entry["command"], os.X_OK) and entry["args"] == ["mcp", str(repo.resolve())]
    assert "put this in" in done.stderr
    as_json = json.loads(dual("mcp", "--print-config", client, "--json", cwd=repo).stdout)
    assert as_json["client"] == client and as_json["snippet"].strip() == done.stdout.strip()
    bad = dual("mcp", "--print-config", "emacs", cwd=repo)
    assert bad.returncode == 1 and "claude-code, codex, cursor, vscode" in bad.stderr

