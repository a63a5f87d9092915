"""The command line: typer parses, plain functions in `dualgit.cli.commands` do the work."""

from __future__ import annotations

from typing import Annotated

import typer

from dualgit import __version__
from dualgit.cli.options import JSON

app = typer.Typer(
    name="git dual",
    help="Every git worktree its own machine: one Docker container per worktree.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},  # git's habit: `git dual rm -h`
)

PathArg = Annotated[str | None, typer.Argument(
    help="A worktree's path (or a folder in it), or its branch. Default: here.", metavar="BRANCH|PATH", show_default=False)]
TargetsArg = Annotated[list[str] | None, typer.Argument(
    help="Worktrees' paths (or folders in them), or their branches. Default: here.", metavar="BRANCH|PATH",
    show_default=False)]
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command()
def up(
    target: PathArg = None,
    recreate: Annotated[bool, typer.Option("--recreate", help="Make the container anew.")] = False,
    setup: Annotated[bool, typer.Option("--setup", help="Run the setup steps again.")] = False,
) -> int:
    """Create the worktree's container, or start it; recreate it when its image or ports changed."""
    from dualgit.cli.commands.up import up as run

    return run(target, recreate, setup)


@app.command()
def logs(
    target: PathArg = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing (setup's: until it ends).")] = False,
    serve: Annotated[bool, typer.Option("--serve", help="The dev server's output (`serve`), not setup's.")] = False,
    service: Annotated[str | None, typer.Option("--service", help="A service's output (`[services.NAME]`).")] = None,
) -> int:
    """The setup steps' output for this worktree, or with --serve its dev server's, or with --service a service's."""
    from dualgit.cli.commands.logs import logs as run

    return run(target, follow, serve, service)


@app.command()
def serve(
    target: PathArg = None,
    restart: Annotated[bool, typer.Option("--restart", help="Restart it (a crash loop's too).")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop it until `git dual serve`, or the next start.")] = False,
    as_json: Annotated[bool, typer.Option(JSON, help="A list: port, state, detail, code.")] = False,
) -> int:
    """The branch's dev server (`serve` in .dual.toml), which runs in its container: how it stands,
    or start (after a stop or a crash loop), restart or stop it."""
    from dualgit.cli.commands.serve import serve as run

    return run(target, restart, stop, as_json)


@app.command()
def config(
    action: Annotated[str, typer.Argument(help="get, set, unset, or for list keys add and remove.", metavar="ACTION",
                                          show_default=False)],
    key: Annotated[str, typer.Argument(help="A key, dotted for a table's: serve, ports, env.NODE_ENV, serve.3000.",
                                       metavar="KEY", show_default=False)],
    value: Annotated[str | None, typer.Argument(help="TOML (3000, true, [3000, 5173], \"x\"), else a plain string.",
                                                metavar="VALUE", show_default=False)] = None,
    user_wide: Annotated[bool, typer.Option("--global", help="The user-wide config.toml, not this worktree's .dual.toml.")
                         ] = False,
    as_json: Annotated[bool, typer.Option(JSON, help="An object: file, key, value (and changed).")] = False,
) -> int:
    """Read or edit this worktree's .dual.toml the way `git config` edits git's files: comments and
    layout kept, and the value checked against its key's type before the file is written."""
    from dualgit.cli.commands.config import config as run

    return run(action, key, value, user_wide, as_json)


@app.command()
def allow(
    target: PathArg = None,
    revoke: Annotated[bool, typer.Option("--revoke", help="Take back every yes given for this repository.")] = False,
    as_json: Annotated[bool, typer.Option(JSON, help="An object: repo, worktree, branch, settings, allowed.")] = False,
) -> int:
    """Allow what this worktree's devcontainer.json or plugins ask for that widens its container's
    reach beyond the worktree (privileged mode, capabilities, devices, mounts of host paths, host
    networking): until then dualgit makes the container without it. Kept on the host, for this
    repository and these exact settings: a changed setting asks again."""
    from dualgit.cli.commands.allow import allow as run

    return run(target, revoke, as_json)


@app.command()
def doctor(as_json: Annotated[bool, typer.Option(JSON, help="An object: endpoint, source, tls, reachable, server, "
                                                           "checks (name, ok, detail, fix), proxy, sockets, "
                                                           "others, env.")] = False) -> int:
    """Which engine dualgit reaches and why; whether it answers, sees this worktree through a bind
    mount and publishes ports to this host, and whether the proxy runs for it. Exits 1 when a check
    fails, each with its fix."""
    from dualgit.cli.commands.doctor import doctor as run

    return run(as_json)


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json")] = False) -> int:
    """The plugins loaded: name, distribution, version, hooks (DUALGIT_PLUGINS: a,b, no:NAME)."""
    from dualgit.cli.commands.plugins import plugins as run

    return run(as_json)


@app.command()
def down(
    targets: TargetsArg = None,
    rm: Annotated[bool, typer.Option("--rm", help="Remove the container (files and volumes stay).")] = False,
    every: Annotated[bool, typer.Option("--all", help="Every container of this repository.")] = False,
) -> int:
    """Stop worktrees' containers (this one's, the ones named, or all)."""
    from dualgit.cli.commands.down import down as run

    return run(targets, rm, every)


@app.command()
def seed(
    service: Annotated[str | None, typer.Argument(help="The service (default: each one with volumes).")] = None,
    source: Annotated[str | None, typer.Option("--from", help="The branch to copy (default: its `seed`).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace this branch's service data.")] = False,
    target: Annotated[str | None, typer.Option("--worktree", help="A worktree's path or branch (default: here).")] = None,
    as_json: Annotated[bool, typer.Option(JSON, help="What was replaced, as JSON.")] = False,
) -> int:
    """Make a branch's service data anew as a copy of another branch's (says what it replaces first)."""
    from dualgit.cli.commands.seed import seed as run

    return run(service, source, force, target, as_json)


@app.command("ls")
def ls_(as_json: Annotated[bool, typer.Option(JSON, help="A JSON array, one object per worktree.")] = False) -> int:
    """Every worktree with its branch, container, state and ports."""
    from dualgit.cli.commands.ls import ls

    return ls(as_json)


@app.command("exec", context_settings=PASSTHROUGH)
def exec_(ctx: typer.Context) -> int:
    """Run a command in this worktree's container (after setup): [-e K=V]... [--root] [--no-wait] [--] CMD..."""
    from dualgit.shell import exec

    return exec.run(exec.parse(list(ctx.args)))


@app.command()
def shell(root: Annotated[bool, typer.Option("--root", help="As root inside (the worktree owner's by default).")] = False
          ) -> int:
    """An interactive shell in this worktree's container (bash where the image has it), after the
    steps that run on attach (devcontainer.json's postAttachCommand)."""
    from dualgit.shell import attach, exec

    return exec.run(exec.parse([*(["--root"] if root else []), "--", *attach.command()]))


@app.command()
def init(force: Annotated[bool, typer.Option("--force", help="Replace an existing .dual.toml.")] = False) -> int:
    """Install the hooks, and write a commented .dual.toml at the worktree's root (one there is kept)."""
    from dualgit.cli.commands.init import init as run

    return run(force)


@app.command()
def install() -> int:
    """Install the git hooks: `git worktree add` then brings up the new worktree's container."""
    from dualgit.cli.commands.install import install as run

    return run()


@app.command()
def uninstall() -> int:
    """Remove dualgit's git hooks and put back any hook that was there before."""
    from dualgit.cli.commands.install import uninstall as run

    return run()


@app.command()
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; change nothing.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Say nothing.")] = False,
) -> int:
    """Remove containers (and volumes) whose worktree git no longer knows."""
    from dualgit.cli.commands.gc import gc as run

    return run(dry_run, quiet)


@app.command()
def rm(
    targets: TargetsArg = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Remove even with uncommitted changes.")] = False,
) -> int:
    """Remove worktrees and their containers; a dirty worktree is refused as git refuses it."""
    from dualgit.cli.commands.rm import rm as run

    return run(targets, force)


@app.command()
def inspect(
    target: PathArg = None,
    as_json: Annotated[bool, typer.Option(JSON, help="An object: worktree, sources, image, build, features, compose, "
                                                     "env, mounts, ports, user, workspace_folder, steps, "
                                                     "not_honoured, needs_consent.")] = False,
) -> int:
    """What a worktree's container is made from (image or build, features, compose, env, mounts, ports,
    user, setup steps and when they run, what is not honoured and why, what waits for `git dual
    allow`), read from its files with no engine call."""
    from dualgit.cli.commands.inspect import inspect as run

    return run(target, as_json)


@app.command()
def mcp(
    folder: Annotated[str | None, typer.Argument(help="A folder of the repository. Default: here.", metavar="FOLDER",
                                                 show_default=False)] = None,
    print_config: Annotated[str | None, typer.Option(
        "--print-config", metavar="CLIENT",
        help="Print the snippet that registers this server with claude-code, codex, cursor or vscode.")] = None,
    as_json: Annotated[bool, typer.Option(JSON, help="With --print-config: an object: client, file, snippet.")] = False,
) -> int:
    """Serve dualgit's tools to a coding agent over MCP (stdio): list, create and remove branches, run
    commands in them (exit codes kept), read their logs and URLs, bring them up, down or to sleep."""
    from dualgit.cli.commands.mcp import mcp as run

    return run(folder, print_config, as_json)


proxy_app = typer.Typer(help="The per-branch URL proxy: http://<branch>.<repo>.localhost:<port>.", no_args_is_help=True,
                        context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(proxy_app, name="proxy")


@proxy_app.command("run")
def proxy_run(replace: Annotated[bool, typer.Option("--replace", hidden=True)] = False) -> int:
    """Run the proxy in the foreground."""
    from dualgit.cli.commands import proxy

    return proxy.run(replace)


@proxy_app.command("supervise", hidden=True)
def proxy_supervise(replace: Annotated[bool, typer.Option("--replace", hidden=True)] = False) -> int:
    """Run the proxy as a child, starting it again when it dies (what `proxy start` spawns)."""
    from dualgit.proxy import supervisor

    return supervisor.supervise(replace)


@proxy_app.command("start")
def proxy_start() -> int:
    """Start the proxy as a supervised daemon, started again when it dies (pid and log under the user's state dir)."""
    from dualgit.cli.commands import proxy

    return proxy.start()


@proxy_app.command("stop")
def proxy_stop() -> int:
    """Stop the proxy daemon and its supervisor (the next hook, up or exec starts it again)."""
    from dualgit.cli.commands import proxy

    return proxy.stop()


@proxy_app.command("install-service")
def proxy_install_service(as_json: Annotated[bool, typer.Option("--json")] = False) -> int:
    """Run the proxy as a login service (a systemd user unit, a launchd agent): up after login, restarted when it dies."""
    from dualgit.cli.commands import proxy

    return proxy.install_service(as_json)


@proxy_app.command("uninstall-service")
def proxy_uninstall_service(as_json: Annotated[bool, typer.Option("--json")] = False) -> int:
    """Remove the login service that install-service wrote (stopping and disabling it)."""
    from dualgit.cli.commands import proxy

    return proxy.uninstall_service(as_json)


@proxy_app.command("status")
def proxy_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> int:
    """Whether the proxy runs, on which ports, and what it could not listen on."""
    from dualgit.cli.commands import proxy

    return proxy.status(as_json)


@app.command()
def urls(as_json: Annotated[bool, typer.Option(JSON, help="A JSON array of {branch, port, url}.")] = False) -> int:
    """Every branch's URLs: http://<branch>.<repo>.localhost:<port> and tcp://127.0.0.1:<port>."""
    from dualgit.cli.commands.urls import urls as run

    return run(as_json)


@app.command("open")
def open_(
    target: PathArg = None,
    port: Annotated[int | None, typer.Option("--port", help="Which of its ports.")] = None,
) -> int:
    """Open a branch's URL in the browser (or print it where there is none)."""
    from dualgit.cli.commands import proxy

    return proxy.open_(target, port)


@app.command("shell-init")
def shell_init(shell: Annotated[str, typer.Argument(help="bash, zsh or fish")] = "bash") -> int:
    """Lines for your shell's rc (`eval "$(git dual shell-init bash)"`): commands such as npm, python
    and curl then run in the worktree's container from any process, non-interactive ones too; and TAB
    completes git dual's commands, options and branches."""
    from dualgit.cli.completion import script
    from dualgit.shell.shims import shell_init as run

    print(run(shell, script(shell, app) if shell in ("bash", "zsh", "fish") else ""), end="")
    return 0


@app.command("env")
def env_() -> int:
    """The same as shell-init, as plain `export` lines, for tools that take an environment."""
    from dualgit.shell.shims import env_lines

    print(env_lines(), end="")
    return 0


@app.command()
def which(name: Annotated[str, typer.Argument(help="A command name, such as npm.")]) -> int:
    """Where NAME would run from here (this machine or the worktree's container), and why."""
    from dualgit.shell.shims import which as run

    print(run(name))
    return 0


@app.command()
def version() -> int:
    """Print dualgit's version."""
    print(__version__)
    return 0
