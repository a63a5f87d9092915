"""`git dual mcp`: dualgit's tools for coding agents, over the Model Context Protocol on stdio, on the
official SDK (`mcp`). The tools' work is `tools.py`'s; here are their names, descriptions and
argument schemas, and the rule that turns an expected failure into a tool error of one line.

The SDK runs each tool in a worker thread, so ten `exec` calls run at once, and a long one holds up
no other call. While it serves, the SDK points fd 1 at stderr: nothing but protocol reaches stdout.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypedDict, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from dualgit import __version__
from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError
from dualgit.mcp.tools import LOG_LINES, MAX_LOG_LINES, Repository
from dualgit.shell.capture import LIMIT

INSTRUCTIONS = """dualgit runs every git worktree of this repository in its own container, with its own
network (every branch's dev server binds the same port) and URLs (http://BRANCH.REPO.localhost:PORT).
Open a branch with create_branch, run commands in it with exec (exit codes come back as they are),
read its setup or dev server output with logs, and find its URLs with urls. A branch is named by its
name or by a path in its worktree."""

Branch = Annotated[str, Field(description="A branch name (feat/login), or a path in its worktree.")]
F = TypeVar("F", bound=Callable[..., Any])


class ExecResult(TypedDict):
    branch: str
    exit_code: int
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    seconds: float


def speaking(fn: F) -> F:
    """An expected failure (a DualgitError, or the engine's refusal) is a tool error of one line: what
    went wrong, then what to do about it."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DualgitError as exc:
            raise ToolError(exc.message + (f"; {exc.hint}" if exc.hint else "")) from None
        except ApiError as exc:
            raise ToolError(f"the engine refused: {exc.message}; see `git dual doctor`") from None
        except Exception as exc:  # a bug: said in one line; the traceback goes to the server's stderr
            import traceback

            traceback.print_exc()
            raise ToolError(f"unexpected error in dualgit: {type(exc).__name__}: {exc}; this is a bug: please report it "
                            "with the server's stderr") from None

    return run  # type: ignore[return-value]


def build(folder: str) -> MCPServer[Any]:
    """The server for the repository `folder` is in (refused when dualgit's hooks are not installed)."""
    here = Repository(folder)
    server: MCPServer[Any] = MCPServer("dualgit", instructions=INSTRUCTIONS, version=__version__,
                                       log_level="WARNING")  # a tool error is the client's to show
    reads = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=reads)
    @speaking
    def list_branches() -> dict[str, Any]:
        """Every worktree of the repository: branch, path, container state (running, exited, asleep,
        missing), setup (none, running, done, failed), ports and dev servers."""
        return {"branches": here.list_branches()}

    @server.tool()
    @speaking
    def create_branch(
        branch: Annotated[str, Field(description="The branch: a new one (made from base), or one that exists.")],
        base: Annotated[str | None, Field(description="What a new branch starts from (a branch, tag or commit); "
                                                      "default: the current HEAD of the main worktree.")] = None,
        path: Annotated[str | None, Field(description="Where its worktree goes, relative to the main worktree; "
                                                      "default: beside it, as ../REPO-BRANCH.")] = None,
    ) -> dict[str, Any]:
        """Add a worktree for a branch (git worktree add) and return once its container runs, with its
        URLs. Setup (if any) goes on in the background; exec waits for it."""
        return here.create_branch(branch, base, path)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    @speaking
    def remove_branch(
        branch: Branch,
        force: Annotated[bool, Field(description="Remove even with uncommitted changes, which are lost.")] = False,
    ) -> dict[str, Any]:
        """Remove a branch's worktree (as git worktree remove: refused when it has uncommitted changes,
        unless force) and its container and volumes. The branch itself stays in git."""
        return here.remove_branch(branch, force)

    @server.tool()
    @speaking
    def exec(
        branch: Branch,
        command: Annotated[list[str] | str, Field(
            description='The command: an argv list (["npm", "test"]), or a shell string ("npm test && npm run lint").')],
        folder: Annotated[str | None, Field(description="Where it runs, relative to the worktree's root; default: the root."
                                            )] = None,
        stdin: Annotated[str | None, Field(description="Text for its standard input; default: none (closed).")] = None,
        timeout: Annotated[float, Field(description="Seconds (up to 86400) before it gets SIGTERM and the call fails."
                                        )] = 600,
        env: Annotated[dict[str, str] | None, Field(description="Variables to set for it.")] = None,
        root: Annotated[bool, Field(description="Run as root inside, not as the worktree's owner.")] = False,
        wait_for_setup: Annotated[bool, Field(description="Wait for the branch's setup to end first (within timeout)."
                                              )] = True,
        max_output: Annotated[int, Field(description="Bytes kept of stdout and of stderr each: the first 8 KiB and the "
                                         "last ones, with a marker where the middle was cut (1024 to 16777216)."
                                         )] = LIMIT,
        service: Annotated[str | None, Field(description="Run in this service's container (`[services.NAME]`, such as "
                                             "db) instead of the branch's own; folder is then ignored.")] = None,
    ) -> ExecResult:
        """Run a command in the branch's container, in its worktree, and return its exit code (a failing
        command is not a tool error: exit 42 comes back as 42), stdout and stderr. The container is
        started or made if need be."""
        return here.exec(branch, command, folder, stdin, timeout, env, root, wait_for_setup,  # type: ignore[return-value]
                         max_output, service)

    @server.tool(annotations=reads)
    @speaking
    def logs(
        branch: Branch,
        which: Annotated[str, Field(description="setup (the setup steps' output) or serve (the dev server's).")
                         ] = "setup",
        lines: Annotated[int, Field(description=f"How many of the last lines (1 to {MAX_LOG_LINES}).")] = LOG_LINES,
    ) -> dict[str, Any]:
        """The last lines of a branch's setup log (with setup's state), or of its dev server's output."""
        return here.logs(branch, which, lines)

    @server.tool(annotations=reads)
    @speaking
    def urls(branch: Annotated[str | None, Field(description="Only this branch's (a name or a path); default: every "
                                                             "branch's.")] = None) -> dict[str, Any]:
        """Branches' URLs: http://BRANCH.REPO.localhost:PORT for web ports, tcp://127.0.0.1:PORT for the others;
        they answer on this machine, and wake a sleeping branch."""
        return {"urls": here.urls(branch)}

    @server.tool(annotations=reads)
    @speaking
    def inspect(branch: Branch) -> dict[str, Any]:
        """What a branch's container is made from, as `git dual inspect --json` says it, read from its
        files with no engine call: sources, image or build, features, compose, env, mounts, ports, user,
        setup steps and when they run, what dualgit does not honour and why, what waits for consent."""
        return here.inspect(branch)

    @server.tool()
    @speaking
    def up(
        branch: Branch,
        recreate: Annotated[bool, Field(description="Make the container anew (after a change to its image).")] = False,
        setup: Annotated[bool, Field(description="Run the setup steps again.")] = False,
    ) -> dict[str, Any]:
        """Bring a branch's container up: start it, make it if it is missing, remake it if its config changed."""
        return here.up(branch, recreate, setup)

    @server.tool()
    @speaking
    def down(branch: Branch) -> dict[str, Any]:
        """Stop a branch's container until up or exec starts it again (its files and data stay)."""
        return here.down(branch)

    @server.tool()
    @speaking
    def sleep(branch: Branch) -> dict[str, Any]:
        """Put a branch to sleep now, as the proxy does an idle one: its container stops, and its next
        request at its URL (or the next exec) wakes it. Refused while a command runs in it."""
        return here.sleep(branch)

    return server


def serve(folder: str) -> int:
    server = build(folder)
    server.run("stdio")
    return 0
