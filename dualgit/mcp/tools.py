"""What the MCP server's tools do, as plain functions over one repository: each takes plain values
and returns plain data, or raises DualgitError with what to do about it. `server.py` is the SDK's
side (names, descriptions, schemas); these know nothing of the protocol.

Every tool that acts on a branch takes `branch`: a branch name, or a path in its worktree."""

from __future__ import annotations

import os
import re
from typing import Any

from dualgit.errors import DualgitError
from dualgit.git import repository
from dualgit.git.locate import GUARD
from dualgit.githooks.install import HOOKS, hooks_dir, is_ours
from dualgit.naming import container_name
from dualgit.shell import capture
from dualgit.worktrees import agent, engines, idle, inventory, setup_state, status
from dualgit.worktrees.targets import listing, reconciled

LOG_LINES = 50  # `logs`' default
MAX_LOG_LINES = 2000


class Repository:
    """The repository the server works on: the one its folder is in, with dualgit's hooks installed."""

    def __init__(self, folder: str) -> None:
        self.folder = os.path.realpath(folder)
        self.repo = repository.open_repo(self.folder)
        where = hooks_dir(self.repo)
        if not all(is_ours(os.path.join(where, hook)) for hook in HOOKS):
            raise DualgitError(f"dualgit's git hooks are not installed in {self.repo.name} ({self.folder})",
                               hint=f"run `git dual install` in {self.folder}, then start `git dual mcp` again")

    def worktree(self, branch: str) -> repository.Worktree:
        """The worktree `branch` names: a branch, or a path (relative to the server's folder) in it."""
        if not branch:
            raise DualgitError("no branch given", hint="name a branch, or a path in its worktree (list_branches shows them)")
        target = branch if os.path.isabs(branch) else os.path.join(self.folder, branch)
        found = repository.find_worktree(self.repo, target if os.path.exists(target) else branch)
        return found

    # tools

    def list_branches(self) -> list[dict[str, Any]]:
        _repo, api, containers, trees = listing(self.folder)
        return status.table(trees, containers, api)[0]

    def create_branch(self, branch: str, base: str | None = None, path: str | None = None) -> dict[str, Any]:
        _valid_branch(branch, self.folder)
        trees = repository.worktrees(self.repo)
        taken = next((wt for wt in trees if wt.branch == branch), None)
        if taken is not None:
            raise DualgitError(f"branch {branch} has a worktree already, at {taken.path}",
                               hint="use it as it is (exec, urls), or remove_branch it first")
        main = next((wt.path for wt in trees if wt.main), self.folder)
        where = os.path.normpath(os.path.join(main, path) if path else _default_path(main, branch))
        if os.path.exists(where) and os.listdir(where):
            raise DualgitError(f"{where} exists and is not empty", hint="give another path, or none for the default")
        exists = repository.run_git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], main).returncode == 0
        if exists and base:
            raise DualgitError(f"branch {branch} exists already, so it has no base to take",
                               hint="leave base out to check it out as it is, or name a new branch")
        args = ["worktree", "add", where, branch] if exists else ["worktree", "add", "-b", branch, where, *filter(None, [base])]
        _git_with_hooks(args, main)
        wt = repository.find_worktree(self.repo, where)
        return self._running(wt)

    def remove_branch(self, branch: str, force: bool = False) -> dict[str, Any]:
        repo, api, _containers = reconciled(self.folder)
        wt = self.worktree(branch)
        repository.remove_worktree(wt, force)
        gone = None
        for container in inventory.list_containers(api, repo.common_dir, wt.path):
            inventory.remove(api, container, volumes=True)
            from dualgit.worktrees.reconcile import removed

            removed(container)
            gone = container.name
        return {"branch": wt.label, "worktree": wt.path, "removed": True, "container": gone}

    def exec(self, branch: str, command: list[str] | str, folder: str | None = None, stdin: str | None = None,
             timeout: float = 600.0, env: dict[str, str] | None = None, root: bool = False, wait_for_setup: bool = True,
             max_output: int = capture.LIMIT, service: str | None = None) -> dict[str, Any]:
        wt = self.worktree(branch)
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        if not argv or not argv[0]:
            raise DualgitError("no command given", hint='give argv (["npm", "test"]) or a shell string ("npm test")')
        if not 0 < timeout <= 86400:
            raise DualgitError(f"timeout {timeout} is out of range", hint="give seconds between 1 and 86400")
        if not 1024 <= max_output <= 16 * 1024 * 1024:
            raise DualgitError(f"max_output {max_output} is out of range", hint="give bytes between 1024 and 16777216")
        cwd = capture.folder_of(wt.path, folder)
        result = capture.run(wt.location, argv, cwd, [f"{k}={v}" for k, v in (env or {}).items()],
                             None if stdin is None else stdin.encode(), timeout, max_output, root, wait_for_setup,
                             service)
        if result.timed_out:
            cut = "" if result.exit_code is not None else "; its output was still open, so it was let go of"
            raise DualgitError(f"{' '.join(argv)[:200]} timed out after {timeout:g} s (SIGTERM sent{cut}); "
                               f"the last of its output: {_last_line(result.stdout, result.stderr)!r}",
                               hint="give a longer timeout, or start it in the background and read its output from a file")
        return {"branch": wt.label, "exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
                "stdout_bytes": result.stdout_bytes, "stderr_bytes": result.stderr_bytes, "seconds": result.seconds}

    def logs(self, branch: str, which: str = "setup", lines: int = LOG_LINES) -> dict[str, Any]:
        wt = self.worktree(branch)
        if not 1 <= lines <= MAX_LOG_LINES:
            raise DualgitError(f"lines {lines} is out of range", hint=f"give between 1 and {MAX_LOG_LINES}")
        name = container_name(wt.common_dir, wt.path)
        if which == "setup":
            state = setup_state.read(name)
            try:
                with open(setup_state.paths(name)[1], "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except FileNotFoundError:
                text = ""
            return {"branch": wt.label, "which": "setup", "state": state.status, "step": state.step or None,
                    "text": _tail(text, lines)}
        if which == "serve":
            ports = agent.serve_ports(name)
            if not ports:
                raise DualgitError(f"{wt.label} has no `serve` output",
                                   hint='`serve = "npm run dev"` in .dual.toml runs a dev server, then up')
            parts = []
            for port in ports:
                text = agent.read_from(name, f"serve/{port}.log", 0, 1 << 24).decode("utf-8", "replace")
                parts.append({"port": port, "text": _tail(text, lines)})
            states = [{"port": s.port, "state": s.state, "detail": s.describe()} for s in agent.serve_states(name, ports)]
            return {"branch": wt.label, "which": "serve", "serve": states, "ports": parts}
        raise DualgitError(f"no log called {which!r}", hint="give setup (the setup steps') or serve (the dev server's)")

    def urls(self, branch: str | None = None) -> list[dict[str, Any]]:
        from dualgit.proxy import daemon, hosts

        repo, api, mine, trees = listing(self.folder)
        wt = self.worktree(branch) if branch else None
        branches = {w.path: w.branch for w in trees}
        rows = hosts.build(mine, branches).urls(repo.common_dir, worktree=wt.path if wt else None)
        if rows:
            daemon.ensure_started(api.endpoint.url())
        return rows

    def inspect(self, branch: str) -> dict[str, Any]:
        from dualgit.worktrees.inspection import inspect

        return inspect(self.worktree(branch).location)

    def up(self, branch: str, recreate: bool = False, setup: bool = False) -> dict[str, Any]:
        _repo, api, _containers = reconciled(self.folder)
        wt = self.worktree(branch)
        if recreate:
            for container in inventory.list_containers(api, wt.common_dir, wt.path):
                inventory.remove(api, container, volumes=False)
        return self._running(wt, setup)

    def down(self, branch: str) -> dict[str, Any]:
        wt, api, container = self._container(branch)
        idle.woke(container.name)  # stopped by the user: no request wakes it
        inventory.stop(api, container)
        return {"branch": wt.label, "container": container.name, "state": "exited"}

    def sleep(self, branch: str) -> dict[str, Any]:
        wt, api, container = self._container(branch)
        if container.state != "running":
            raise DualgitError(f"{wt.label} is not running ({container.state})", hint="up starts it")
        lock = idle.claim(container.name)
        if lock is None:
            raise DualgitError(f"a command runs in {wt.label} now", hint="sleep it once that command has ended")
        try:
            idle.fell_asleep(container.name)
            try:
                inventory.stop(api, container)
            except DualgitError:
                idle.woke(container.name)
                raise
        finally:
            os.close(lock)
        return {"branch": wt.label, "container": container.name, "state": "asleep",
                "wakes": "on its next request at its URL, or the next exec"}

    # helpers

    def _container(self, branch: str) -> tuple[repository.Worktree, Any, inventory.Container]:
        _repo, api, containers, _trees = listing(self.folder)
        wt = self.worktree(branch)
        mine = [c for c in containers if c.worktree == wt.path]
        if not mine:
            raise DualgitError(f"{wt.label} has no container", hint="up makes it")
        return wt, api, mine[0]

    def _running(self, wt: repository.Worktree, setup: bool = False) -> dict[str, Any]:
        """The worktree's container, running (made, started, or its image's pull waited for)."""
        from dualgit.worktrees.containers import ensure_running
        from dualgit.worktrees.images import ImageNotHere

        api = engines.client()
        name = container_name(wt.common_dir, wt.path)
        try:
            container = ensure_running(wt.location, api=api, pull=False)
        except ImageNotHere:  # the hook pulls it in the background: that is waited for, and it makes the container
            setup_state.wait(name, show_progress=False)
            container = ensure_running(wt.location, api=api)
        if setup:
            setup_state.start_background(wt.location, container.name, container.id, force=True)
        from dualgit.shell.shims import ensure_for_worktree

        ensure_for_worktree(wt.path)
        return {"branch": wt.label, "worktree": wt.path, "container": container.name, "state": container.state,
                "setup": setup_state.read(name).status, "urls": self.urls(wt.path)}


def _valid_branch(branch: str, cwd: str) -> None:
    if not branch or repository.run_git(["check-ref-format", "--branch", branch], cwd).returncode != 0:
        raise DualgitError(f"{branch!r} is not a valid branch name", hint="use letters, digits, - _ . and /, as feat/login")


def _default_path(main: str, branch: str) -> str:
    """Beside the main worktree: `<repo>-<branch>`, slashes as dashes (`../demo-feat-login`)."""
    return os.path.join(os.path.dirname(main), f"{os.path.basename(main)}-{re.sub(r'[^A-Za-z0-9._-]+', '-', branch)}")


def _git_with_hooks(args: list[str], cwd: str) -> None:
    """`git ARGS` as a user runs it, so that dualgit's hook makes the container."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != GUARD}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("dualgit:")]
        raise DualgitError(f"git {args[0]} {args[1]} failed: {said[-1] if said else done.returncode}",
                           hint="fix what git says, then try again")


def _tail(text: str, lines: int) -> str:
    return "".join(text.splitlines(True)[-lines:])


def _last_line(*texts: str) -> str:
    for text in texts:
        stripped = text.rstrip().splitlines()
        if stripped:
            return stripped[-1][-200:]
    return ""
