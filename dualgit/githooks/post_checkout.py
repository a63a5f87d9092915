"""What the hook scripts (and the pre-commit framework's hooks) call: `git dual hook HOOK ARGS`.

A guest in git: whatever goes wrong becomes one `dualgit:` line on stderr and exit 0, so a git
command never fails because of Docker (unless `.dual.toml` says `strict = true`).
"""

from __future__ import annotations

import os
import sys

from dualgit.errors import DualgitError
from dualgit.git.locate import GUARD, locate, read_head

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.config import Config
    from dualgit.git.locate import Location
    from dualgit.worktrees.inventory import Container

PRE_COMMIT_VARS = ("PRE_COMMIT_FROM_REF", "PRE_COMMIT_TO_REF", "PRE_COMMIT_CHECKOUT_TYPE")


def say(line: str) -> None:
    print(f"dualgit: {line}", file=sys.stderr)


def run_hook(args: list[str]) -> int:
    if not args:
        say("usage: git dual hook post-checkout OLD NEW FLAG")
        return 0
    hook, rest = args[0], args[1:]
    if hook != "post-checkout":
        say(f"unknown hook {hook!r}; this dualgit handles post-checkout")
        return 0
    from_pre_commit = not rest and all(v in os.environ for v in PRE_COMMIT_VARS)
    if from_pre_commit:  # the pre-commit framework passes the arguments in its environment
        rest = [os.environ[v] for v in PRE_COMMIT_VARS]
    if len(rest) != 3:
        say(f"post-checkout expects 3 arguments (old ref, new ref, flag), got {len(rest)}; nothing done")
        return 0
    if from_pre_commit and _disabled():  # the hook script checks this itself, before Python starts
        return 0
    return post_checkout(*rest)


def post_checkout(old: str, new: str, flag: str) -> int:
    if os.environ.get(GUARD) or flag != "1" or old.strip("0"):
        return 0  # dualgit's own git, a file checkout, or a branch switch: nothing to do
    try:
        loc = locate()
    except DualgitError as exc:
        say(exc.message)
        return 0
    branch = read_head(loc.gitdir)[0] or f"(detached {new[:7]})"
    strict = False
    try:
        from dualgit.config import load
        from dualgit.worktrees.containers import ensure_running
        from dualgit.worktrees.images import ImageNotHere

        config = load(loc.worktree)
        strict = config.strict
        _worktree_added(loc, config)
        container: Container | None = None
        pulling = ""
        remote = "" if strict else _remote(loc, config)
        if remote:  # each call to it is a round trip: all of it in the background, its first sync too
            from dualgit.worktrees.setup_state import create_in_background

            create_in_background(loc, f"create on {remote}")
            pulling = f"create on {remote}"
        else:
            try:
                container = ensure_running(loc, config, pull=strict)  # strict: the git command waits, to fail it
            except ImageNotHere as exc:
                from dualgit.worktrees.setup_state import create_in_background

                create_in_background(loc, exc.step)
                pulling = exc.step
        from dualgit.shell.shims import ensure_for_worktree

        ensure_for_worktree(loc.worktree)
        if container is not None:
            say(f"{branch} -> container {container.name} {container.state}" + _where(container))
        else:
            _proxy_up()
            say(f"{branch}: {pulling.replace('pull ', 'pulling ', 1).replace('build ', 'building from ', 1)} in the "
                "background, then its container" + (" and the first sync of its files" if remote else "") + " "
                "(`git dual logs -f` follows it; `git dual exec` waits for it)")
        _reconcile_in_background()
    except DualgitError as exc:
        say(f"{branch}: no container yet: {exc.message} (once fixed, `git dual up` makes it)")
        return 1 if strict else 0
    except Exception as exc:  # a guest never breaks the host's command
        say(f"{branch}: no container yet: {type(exc).__name__}: {exc} (`git dual up` retries)")
        return 1 if strict else 0
    return 0


def _remote(loc: Location, config: Config) -> str:
    """The engine's address when it is on another machine (its worktrees synced), else ""."""
    from dualgit.engine.find import named
    from dualgit.worktrees.engines import likely
    from dualgit.worktrees.sync import wanted

    found = named(likely(loc, config))
    return found.where() if wanted(found, config) else ""


def _worktree_added(loc: Location, config: Config) -> None:
    """The plugins' work that git waits for (the shared files): a failure is a warning."""
    from dualgit.plugins import plugins
    from dualgit.worktrees.plan import context_for

    try:
        plugins().call("dualgit_worktree_added", ctx=context_for(loc, config=config))
    except DualgitError as exc:
        say(f"warning: {exc.message}")


def _where(container: Container) -> str:
    """`; http://<branch>.<repo>.localhost:3000/` through the proxy (started here if need be), or
    the published loopback ports when the proxy is turned off."""
    if not _proxy_up():
        from dualgit.worktrees.agent import own_ports

        ports = ", ".join(f":{p} at http://{host}/" for p, host in own_ports(container).items())
        return f"; {ports}" if ports else ""
    from dualgit.proxy.hosts import current
    from dualgit.worktrees.engines import one

    # its own engine's table: git does not wait on another engine (one out of reach costs ssh's timeout)
    urls = [str(row["url"]) for row in current(one(container.name)).urls(worktree=container.worktree)]
    return f"; {', '.join(urls)}" if urls else ""


def _proxy_up() -> bool:
    from dualgit.proxy.daemon import ensure_started

    return ensure_started()


def _disabled() -> bool:
    import subprocess

    result = subprocess.run(
        ["git", "config", "--bool", "dual.enabled"], capture_output=True, text=True, env={**os.environ, GUARD: "1"}
    )
    return result.stdout.strip() == "false"


def _reconcile_in_background() -> None:
    """`git dual gc --quiet` for the repository git runs the hook in (its cwd), detached: reaping
    containers of worktrees removed since the last run needs git's worktree list and the engine's,
    and `git worktree add` need not wait for them."""
    from dualgit.background import reconcile_later

    try:
        reconcile_later()
    except OSError as exc:
        say(f"could not start the background clean-up ({exc}); `git dual gc` does it")
