"""Entry point: the fast paths (`exec`, `route`, `hook`, and `ls` and `urls` as agents call them)
before typer is imported, and the error boundary: one `error:` line for expected failures (exit
1), 130 on Ctrl-C, 3 and a log for bugs."""

from __future__ import annotations

import os
import sys

from dualgit.cli.options import JSON
from dualgit.errors import EXIT_BUG, EXIT_ERROR, EXIT_INTERRUPTED, DualgitError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        return _dispatch(args)
    except DualgitError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError as exc:
        if _reader_gone():
            return EXIT_ERROR  # `git dual ls | head`: nobody reads the rest
        return _bug(exc, args)  # a pipe of ours broke (an engine's, a subprocess's): say so
    except Exception as exc:  # a bug: say so, keep the details for a report
        return _bug(exc, args)


def _reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (the write end then polls as an error)."""
    import select

    poller = select.poll()
    poller.register(1, select.POLLOUT)
    return any(events & select.POLLERR for _fd, events in poller.poll(0))


def _dispatch(args: list[str]) -> int:
    if args[:1] == ["exec"]:
        from dualgit.shell import exec

        code = exec.run(exec.parse(args[1:]))
        # Nothing is left to clean up: the interpreter's teardown is skipped.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if args[:1] == ["route"]:
        from dualgit.shell.route import main as route

        code = route(args[1:])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if args[:1] == ["setup-run"]:
        from dualgit.setup.runner import run

        return run(args[1:])
    if args[:1] == ["sync-run"]:
        from dualgit.remote.run import run as sync_run

        return sync_run(args[1:])
    if args[:1] == ["sync-pipe"]:  # what unison runs in place of ssh: its server, in the sync helper
        import json

        from dualgit.engine.api import DockerAPI
        from dualgit.engine.find import chosen
        from dualgit.engine.pipe import stdio

        api = DockerAPI(chosen(os.environ.get("DUALGIT_SYNC_ENGINE")))  # the worktree's, as `sync-run` names it
        code = stdio(api, os.environ["DUALGIT_SYNC_HELPER"], json.loads(os.environ["DUALGIT_SYNC_SERVER"]),
                     user=os.environ.get("DUALGIT_SYNC_USER"))
        os._exit(code)
    if args[:1] == ["hook"]:
        from dualgit.githooks.post_checkout import run_hook

        return run_hook(args[1:])
    if args in (["ls"], ["ls", JSON], ["urls"], ["urls", JSON]):  # anything else (--help, a typo) goes to typer
        if args[0] == "ls":
            from dualgit.cli.commands.ls import ls

            return ls(as_json=JSON in args)
        from dualgit.cli.commands.urls import urls

        return urls(as_json=JSON in args)
    import typer
    from typer.exceptions import TyperException

    from dualgit.cli.app import app

    try:
        result = app(args=args, prog_name="git dual", standalone_mode=False)
    except typer.Abort:
        return EXIT_INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except TyperException as exc:  # usage errors: typer prints them with the usage line
        exc.show()  # type: ignore[attr-defined]
        return exc.exit_code
    return result if isinstance(result, int) else 0


def _bug(exc: BaseException, args: list[str]) -> int:
    import platform
    import tempfile
    import traceback

    from dualgit import __version__

    log = os.path.join(tempfile.gettempdir(), "dualgit-error.log")
    with open(log, "w") as f:
        f.write(f"dualgit {__version__}, Python {platform.python_version()}, {platform.platform()}\n")
        f.write(f"args: {args!r}\n\n")
        traceback.print_exception(exc, file=f)
    print(f"dualgit: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(f"hint: this is a bug in dualgit; the details are in {log}, please attach them to a report", file=sys.stderr)
    return EXIT_BUG
