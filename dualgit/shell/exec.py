"""`git dual exec`: run a command in the current worktree's container as if it ran here.

The container is found by name from the worktree's path (no lookup round trip); the happy path
needs the standard library and `engine.api` alone. Missing or stopped containers send us down
the slow path once (`containers.ensure_running`), and then we retry.
"""

from __future__ import annotations

import _socket as socket  # as in engine.api
import os
import signal
import sys

from dualgit.engine import find
from dualgit.engine.api import ApiError, DockerAPI, path
from dualgit.engine.pipe import split_frames
from dualgit.errors import DualgitError
from dualgit.git.locate import Location, locate
from dualgit.naming import container_name
from dualgit.worktrees.idle import Use
from dualgit.worktrees.setup_state import SETUP_CONTAINER
from dualgit.worktrees.state import engine_of as named_engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dualgit.engine.find import Endpoint

# exec's options, defined once: its help, the man page and tab completion are made from them
OPTIONS = (
    (("-e", "--env"), "KEY=VALUE", "set a variable for COMMAND (-e KEY passes this shell's value)"),
    (("--root",), "", "run as root inside (by default, as the owner of the worktree where that matters)"),
    (("--no-wait",), "", "run at once, without waiting for setup to finish"),
    (("--service",), "NAME", "run in the branch's service NAME's container (`[services.NAME]`)"),
    (("--",), "", "what follows is COMMAND, even when it starts with -"),
)
USAGE = "usage: git dual exec [-e KEY=VALUE]... [--root] [--no-wait] [--service NAME] [--] COMMAND [ARG]..."
HELP = USAGE + """

Run COMMAND in this worktree's container, in the same directory, passing exit code,
stdin, TTY and signals through. A stopped container is started, a missing one created,
and setup is waited for.

""" + "".join(f"  {(', '.join(names) + (' ' + meta if meta else '')):<21}{text}\n" for names, meta, text in OPTIONS)
EXEC_TOKEN = "DUALGIT_EXEC"  # a variable each exec gets, unique to it: how its processes are found inside
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
SHELL = ["sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"]
NOT_FOUND_MARKS = (b"executable file not found", b"no such file or directory")
# How an engine's runtime says it could not start the program: Docker's (exit 126), and Podman's
# (exit 127, followed by a line about the attach socket it closed).
RUNTIME_FAILED = (b"OCI runtime exec failed", b"Error: runc: exec failed", b"Error: crun: ")


class ExecRequest:
    __slots__ = ("cmd", "env", "wait", "root", "service")

    def __init__(self, cmd: list[str], env: list[str], wait: bool, root: bool = False, service: str | None = None,
                 ) -> None:
        self.cmd = cmd
        self.env = env
        self.wait = wait
        self.root = root
        self.service = service


def parse(argv: list[str]) -> ExecRequest:
    env: list[str] = []
    wait, root = True, False
    service = None
    args = list(argv)
    while args:
        arg = args[0]
        if arg == "--":
            args.pop(0)
            break
        if arg in ("-e", "--env"):
            if len(args) < 2:
                raise DualgitError(f"{arg} needs KEY=VALUE", hint=USAGE)
            env.append(_env_item(args[1]))
            del args[:2]
        elif arg.startswith("--env="):
            env.append(_env_item(arg[len("--env="):]))
            args.pop(0)
        elif arg.startswith("-e") and len(arg) > 2:
            env.append(_env_item(arg[2:]))
            args.pop(0)
        elif arg == "--no-wait":
            wait = False
            args.pop(0)
        elif arg == "--root":
            root = True
            args.pop(0)
        elif arg == "--service" or arg.startswith("--service="):
            given = arg.partition("=")[2] if "=" in arg else (args[1] if len(args) > 1 else "")
            if not given:
                raise DualgitError("--service needs a service's name", hint="`git dual ls` lists each branch's services")
            service = given
            del args[:1 if "=" in arg else 2]
        elif arg in ("-h", "--help"):
            raise SystemExit(_help())
        elif arg.startswith("-") and arg != "-":
            raise DualgitError(
                f"unknown option {arg} for `git dual exec`", hint=f"{USAGE} (put -- before a command that starts with -)"
            )
        else:
            break
    if not args:
        raise DualgitError("no command given", hint=USAGE)
    return ExecRequest(args, env, wait, root, service)


def _env_item(item: str) -> str:
    key, eq, _ = item.partition("=")
    if not key:
        raise DualgitError(f"bad environment item {item!r}", hint="write -e KEY=VALUE, or -e KEY to pass this shell's value")
    if eq:
        return item
    return f"{key}={os.environ.get(key, '')}"


def _help() -> int:
    print(HELP, end="")
    return 0


def run(request: ExecRequest, location: Location | None = None) -> int:
    loc = location or locate()
    cwd = os.path.realpath(os.getcwd())
    if cwd != loc.worktree and not cwd.startswith(loc.worktree.rstrip("/") + "/"):
        cwd = loc.worktree  # a caller that named the worktree from elsewhere
    cwd = inside(loc, cwd)
    tty = os.isatty(0) and os.isatty(1)
    attach_stdin = _stdin_worth_attaching()
    token = f"{EXEC_TOKEN}={os.urandom(8).hex()}"
    env = [*request.env, token]
    if tty and "TERM" in os.environ:
        env.append(f"TERM={os.environ['TERM']}")
    body = {
        "AttachStdin": attach_stdin,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": tty,
        "Cmd": request.cmd,
        "WorkingDir": cwd,
        "Env": env,
    }
    if request.root:
        body["User"] = "0:0"
    if request.service:
        del body["WorkingDir"]  # a service's container has its own folders, not the worktree
    else:
        text_only(request.cmd, env, cwd)
    pinned = os.environ.get(SETUP_CONTAINER)  # a setup step's exec: that container, never another
    home = container_name(loc.common_dir, loc.worktree)  # the worktree's own container, whose engine is the one
    name = pinned or home
    api = DockerAPI(engine_of(home))
    with Use(name):  # keeps the branch awake while it runs; waits while the proxy puts it to sleep
        if request.wait:
            failed = _wait_for_setup(name)
            if failed is not None:
                return failed
        target = name
        if request.service:
            from dualgit.worktrees.inventory import container_for

            target = container_for(name, request.service)
        exec_id, brought_up = create_exec(api, target, body, None if pinned else loc)
        if brought_up and request.wait:  # a container made just now: its setup has just begun
            failed = _wait_for_setup(name)
            if failed is not None:
                return failed
        if request.wait and not request.service:
            failed = _wait_for_sync(loc, name)
            if failed is not None:
                return failed
        if not pinned:  # a person's or an agent's command; a setup step's needs neither
            _reconcile_now_and_then(loc)
            _proxy_up(api.endpoint.url() if named_engine(home) == find.DEFAULT else "")  # the proxy's is the default
        return Session(api, exec_id, tty, attach_stdin, request.cmd[0], "0:0" if request.root else None, token).run()


def inside(loc: Location, folder: str) -> str:
    """A folder of the worktree as the container sees it: under the project's workspace folder
    (devcontainer.json's workspaceFolder) when the worktree is mounted there too; one file read."""
    from dualgit.worktrees.state import read_line

    workspace = read_line(container_name(loc.common_dir, loc.worktree), "workspace")
    root = loc.worktree.rstrip("/")
    if not workspace or not (folder == loc.worktree or folder.startswith(root + "/")):
        return folder
    return workspace + folder[len(root):]


RECONCILE_EVERY = 30.0  # seconds: exec is the hot path, so it reaps gone worktrees' containers at most this often


def _reconcile_now_and_then(loc: Location) -> None:
    """Every dualgit run reconciles; exec's share is a detached `git dual gc --quiet` when the last
    one from here is older than RECONCILE_EVERY (a stamp file's mtime: one stat on the usual run)."""
    import time
    import zlib

    from dualgit.background import reconcile_later, state_dir

    stamp = state_dir("reconciled", "%08x" % zlib.crc32(loc.common_dir.encode("utf-8", "surrogateescape")))
    try:
        if time.time() - os.stat(stamp).st_mtime < RECONCILE_EVERY:
            return
    except OSError:
        pass
    try:
        os.makedirs(os.path.dirname(stamp), exist_ok=True)
        with open(stamp, "w"):
            pass
        reconcile_later()  # it inherits our working directory, which is in the worktree
    except OSError:
        pass  # the next command reconciles


def engine_of(name: str) -> Endpoint | None:
    """The engine the container `name` was made on, when dualgit's config named one (None: the
    one found as the docker CLI finds it). One file read."""
    return find.chosen(named_engine(name))


def _proxy_up(engine: str) -> None:
    """The engine brings the containers back after a reboot (they restart unless stopped), but not the
    proxy, a user process: the dev server started here answers at its URL without a `git dual up`
    first. One pid file read while the proxy runs."""
    from dualgit.proxy.daemon import ensure_started

    ensure_started(engine)


def text_only(cmd: list[str], env: list[str], cwd: str) -> None:
    """The engine's API is JSON, which carries text: an argument, variable or folder name that is not
    UTF-8 (a byte such as \\xff, which Python keeps as a surrogate) cannot reach the container as it is."""
    for what, items in (("argument", cmd), ("variable", env), ("folder", [cwd])):
        for number, item in enumerate(items, 1):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                shown = item.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                where = f"{what} {number}" if what != "folder" else "this folder"
                hint = ("run from a folder whose name is UTF-8" if what == "folder" else
                        "pass it as UTF-8, or through a file or stdin, which carry bytes as they are")
                raise DualgitError(f"{where} ({shown}) is not valid UTF-8, and the engine's API carries text only",
                                   hint=hint) from None


def _stdin_worth_attaching() -> bool:
    """False for a closed stdin or /dev/null: nothing to forward, and no thread to start."""
    try:
        mine = os.fstat(0)
        null = os.stat(os.devnull)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) != (null.st_dev, null.st_ino)


def _wait_for_setup(name: str) -> int | None:
    from dualgit.worktrees.setup_state import wait

    return wait(name, show_progress=os.isatty(2))


def _wait_for_sync(loc: Location, name: str) -> int | None:
    """A remote worktree's files in step before its command runs (its sync process started if it
    is not running, as after a restart of this machine): None, or 1 with a line saying why not."""
    from dualgit.worktrees.state import sync_status, wait_for_sync

    found = sync_status(name)
    if found is None or (found.get("running") and found.get("synced_once")):
        return None
    if not found.get("running"):
        from dualgit.background import spawn, state_dir

        spawn(["sync-run", loc.worktree], log=state_dir("sync", name, "log"))
    if os.isatty(2):
        sys.stderr.write("dualgit: waiting for the sync of this worktree's files to its engine ...\n")
    stuck = wait_for_sync(name)
    if stuck is None:
        return None
    sys.stderr.write(f"dualgit: {name}'s files are not in step with its engine: {stuck}\n"
                     "hint: `git dual doctor` checks the sync; `git dual exec --no-wait` runs anyway\n")
    return 1


def create_exec(api: DockerAPI, name: str, body: dict[str, Any], loc: Location | None) -> tuple[str, bool]:
    """The exec's id, and whether the container had to be brought up (made, or started) first; with
    no `loc`, a container that is gone or stopped stays so."""
    url = path("/containers/%s/exec", name)
    for attempt in range(3):
        try:
            return api.request("POST", url, body).json()["Id"], attempt > 0
        except ApiError as exc:
            if attempt == 2 or exc.status not in (404, 409) or loc is None:
                raise DualgitError(f"cannot run in container {name}: {exc.message}") from None
            from dualgit.worktrees.containers import ensure_running  # the slow path: config, image, create

            ensure_running(loc)
            api.use(engine_of(container_name(loc.common_dir, loc.worktree)) or find.endpoint())  # where it was made
    raise AssertionError("unreachable")


class Session:
    """One attached exec: pumps stdin, demultiplexes output, forwards signals and window size."""

    def __init__(self, api: DockerAPI, exec_id: str, tty: bool, attach_stdin: bool, program: str,
                 user: str | None = None, token: str | None = None) -> None:
        self.api = api
        self.user, self.token = user, token  # who it runs as, and the variable that marks its processes
        self.exec_id = exec_id
        self.tty = tty
        self.attach_stdin = attach_stdin
        self.program = program
        self.held = b""  # an engine error about a missing program, held until the exit code says so

    def run(self) -> int:
        sock, rest = self.api.hijack(path("/exec/%s/start", self.exec_id), {"Detach": False, "Tty": self.tty})
        restore = self._enter_tty() if self.tty else None
        previous = {sig: signal.signal(sig, self._forward) for sig in FORWARDED_SIGNALS}
        try:
            if self.attach_stdin:
                import threading

                threading.Thread(target=_pump_stdin, args=(sock,), daemon=True).start()
            if self.tty:
                _copy_raw(sock, rest)
            else:
                self._demux(sock, rest)
        finally:
            sock.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if restore:
                restore()
        return self._exit_code()

    def _enter_tty(self) -> Any:
        import termios
        import tty

        saved = termios.tcgetattr(0)
        tty.setraw(0)
        self._resize()
        signal.signal(signal.SIGWINCH, lambda *_: self._resize())

        def restore() -> None:
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
            termios.tcsetattr(0, termios.TCSADRAIN, saved)

        return restore

    def _resize(self) -> None:
        size = os.get_terminal_size(1)
        try:
            self.api.request("POST", path("/exec/%s/resize", self.exec_id), query={"h": size.lines, "w": size.columns})
        except (ApiError, DualgitError):
            pass  # the process may have exited already

    def _forward(self, signum: int, _frame: Any) -> None:
        if self.tty and signum == signal.SIGINT:
            return  # in raw mode Ctrl-C travels as a byte and the container's terminal delivers it
        try:
            info = self.api.request("GET", path("/exec/%s/json", self.exec_id))
        except (ApiError, DualgitError):
            return
        found = info.json()
        pid = int(found.get("Pid") or 0)
        container = str(found.get("ContainerID") or "")
        if pid and _in_container(pid, container):
            try:
                os.killpg(pid, signum) if os.getpgid(pid) == pid else os.kill(pid, signum)
            except ProcessLookupError:
                pass
        elif container and self.token:  # an engine on another machine, or in a VM: its pid is not ours
            self._signal_inside(container, signal.Signals(signum).name.removeprefix("SIG"))

    def _signal_inside(self, container: str, name: str) -> None:
        """Signal the command's processes from inside the container: those whose environment holds
        this exec's token (its children too, as a terminal signals its foreground group), by an exec
        as the same user, who may read their environment and signal them."""
        from dualgit.worktrees.agent import BUSYBOX

        for tools in (f"{BUSYBOX} ", ""):  # the agent's busybox, else the image's own tools
            script = (f'for p in /proc/[0-9]*; do if {tools}tr "\\0" "\\n" < "$p/environ" 2>/dev/null | '
                      f'{tools}grep -qxF "$1"; then kill -s "$0" "${{p#/proc/}}" 2>/dev/null; fi; done')
            try:
                code, _ = self.api.run(container, [*tools.split(), "sh", "-c", script, name, self.token or ""],
                                       self.user, timeout=10)
            except (ApiError, DualgitError):
                continue
            if code not in (126, 127):
                return

    def _demux(self, sock: socket.SocketType, buffer: bytes) -> None:
        first = True
        while True:
            frames, buffer = split_frames(buffer)
            for kind, payload in frames:
                if (first and payload.startswith(RUNTIME_FAILED)) or self.held:
                    self.held += payload  # the runtime's words, not the program's (which never ran)
                else:
                    _write_all(2 if kind == 2 else 1, payload)
                first = False
            chunk = sock.recv(262144)
            if not chunk:
                return
            buffer += chunk

    def _exit_code(self) -> int:
        code = max(self.api.exit_code(self.exec_id), 0)
        if self.held:
            lowered = self.held.lower()
            if code in (126, 127) and any(mark in lowered for mark in NOT_FOUND_MARKS):
                sys.stderr.write(f"{self.program}: command not found\n")
                return 127
            _write_all(2, self.held)
        return code


def _in_container(pid: int, container_id: str) -> bool:
    """True when `pid` is this host's process in that container (a local engine, not a VM's)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return bool(container_id) and container_id in f.read()
    except OSError:
        return False


def _pump_stdin(sock: socket.SocketType) -> None:
    try:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _copy_raw(sock: socket.SocketType, first: bytes) -> None:
    if first:
        _write_all(1, first)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        _write_all(1, chunk)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[written:]
