"""The host's side of the agent (`agent.sh`), each container's main process: the tools volume that
carries it, the relay ports, and the state folder the host and the agent share.

The state folder, `$XDG_STATE_HOME/dualgit/containers/NAME`, is bind-mounted at /.dualgit/state.
What the container writes there is read as data only, through `read` and `read_from`, whose walk
(`_folder`) opens each part with O_NOFOLLOW: a container may plant one to point the host's writes at its files, and the host's
writes go to a fresh file that is then renamed into place."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError
from dualgit.worktrees.state import shared_folder

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine
    from dualgit.worktrees.inventory import Container

BIN = "/.dualgit/bin"  # the tools volume, read-only: a static busybox and agent.sh
STATE = "/.dualgit/state"
BUSYBOX = f"{BIN}/busybox"
TOOLS_IMAGE = "busybox:latest"  # whose static busybox the tools volume gets (`scripts/setup` builds it offline)
TOOLS_LABEL = "dualgit.tools"  # on the tools volume and the short-lived container that fills it
RELAY_TOP = 49151  # the i-th declared HTTP port's relay listens on RELAY_TOP - i inside the container
READ_LIMIT = 1 << 16


def script() -> bytes:
    with open(os.path.join(os.path.dirname(__file__), "agent.sh"), "rb") as f:
        return f.read()


def relay_port(http_ports: tuple[int, ...], port: int) -> int | None:
    """The agent's port inside the container that relays to `port` (None: not a declared one)."""
    return RELAY_TOP - http_ports.index(port) if port in http_ports else None


def relay_ports(http_ports: tuple[int, ...] | list[int]) -> dict[int, int]:
    """Each declared HTTP port and dualgit's own port inside the container that relays to it."""
    return {port: RELAY_TOP - i for i, port in enumerate(http_ports)}


def folder(name: str) -> str:
    return shared_folder(name)


def tools_volume(api: Engine) -> str | None:
    """The tools volume (made on first use, from TOOLS_IMAGE, pulled if need be): its name, or None
    when it cannot be made (no busybox image here or to pull), and containers go without the agent."""
    try:
        image = str(api.inspect_image(TOOLS_IMAGE)["Id"])
    except ApiError:
        try:
            from dualgit.engine.dockerpy import DockerPy  # pulls are docker-py's; the hook's usual path has none

            DockerPy(api.endpoint).pull(*TOOLS_IMAGE.split(":"))
            image = str(api.inspect_image(TOOLS_IMAGE)["Id"])
        except (ApiError, OSError, Exception):  # noqa: BLE001 - any failure: no agent, said by the caller
            return None
    import hashlib
    import secrets

    name = "dualgit-tools-" + hashlib.sha256(script() + image.encode()).hexdigest()[:12]
    if any(v.get("Name") == name for v in api.volumes({"label": [TOOLS_LABEL]})):
        return name
    api.create_volume(name, {TOOLS_LABEL: "1"})
    fill = ('cp /bin/busybox /t/.busybox.$$ && mv /t/.busybox.$$ /t/busybox && '
            'printf "%s" "$0" > /t/.agent.$$ && mv /t/.agent.$$ /t/agent.sh')
    body = {"Image": image, "Entrypoint": ["/bin/busybox", "sh", "-c", fill], "Cmd": [script().decode()],
            "Labels": {TOOLS_LABEL: "1"}, "User": "0:0",
            "HostConfig": {"Mounts": [{"Type": "volume", "Source": name, "Target": "/t"}]}}
    made = api.create_container(body, f"{name}-fill-{secrets.token_hex(3)}")
    try:
        api.start(made)
        code = api.wait(made)
    finally:
        api.remove_container(made)
    return name if code == 0 else None


@dataclass(frozen=True)
class BodyParts:
    """What a container made with the agent adds to its create body (`plan.create_body`)."""

    entrypoint: list[str]
    env: dict[str, str]
    binds: list[str]
    mounts: list[dict[str, object]]
    ports: list[str]


def body_parts(name: str, worktree: str, http_ports: tuple[int, ...], tools: str) -> BodyParts:
    relays = relay_ports(http_ports)
    os.makedirs(folder(name), exist_ok=True)
    os.chmod(folder(name), 0o777)  # the agent runs as the container's user, whoever that is
    return BodyParts(
        entrypoint=[BUSYBOX, "sh", f"{BIN}/agent.sh"],
        env={"DUALGIT_RELAYS": " ".join(f"{p}:{r}" for p, r in relays.items()), "DUALGIT_WORKTREE": worktree},
        binds=[f"{folder(name)}:{STATE}"],
        mounts=[{"Type": "volume", "Source": tools, "Target": BIN, "ReadOnly": True}],
        ports=[f"{r}/tcp" for r in relays.values()],
    )


# The shared folder: safe reads and writes.

@contextmanager
def _folder(name: str, parts: list[str], make: bool) -> Iterator[int]:
    """A descriptor of the state folder's subfolder `parts`, reached through no symlink (made first
    with `make`, the host's writes; a read makes nothing). OSError when it is not there."""
    if make:
        os.makedirs(folder(name), exist_ok=True)
    fd = os.open(folder(name), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            if make:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def read_from(name: str, relative: str, offset: int, limit: int = 1 << 20) -> bytes:
    """The bytes of a file there from `offset` on (a negative one counts from the end); b"" when
    it is not there, or is anything but a plain file (a FIFO or device the container put there)."""
    *parts, leaf = relative.split("/")
    try:
        with _folder(name, parts, make=False) as where:
            fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=where)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                return b""
            f.seek(max(info.st_size + offset, 0) if offset < 0 else offset)
            return f.read(limit)
    except OSError:
        return b""


def read(name: str, relative: str) -> str | None:
    """A file the agent (or the host) wrote there, as text (at most READ_LIMIT bytes from its end
    for a log); None when it is not there, or is anything but a plain file."""
    *parts, leaf = relative.split("/")
    try:
        with _folder(name, parts, make=False) as where:
            if not stat.S_ISREG(os.stat(leaf, dir_fd=where, follow_symlinks=False).st_mode):
                return None
    except OSError:
        return None
    return read_from(name, relative, -READ_LIMIT, READ_LIMIT).decode(errors="replace")


def write(name: str, relative: str, text: str | None) -> None:
    """Write (None: remove) a file of the host's there, never through a symlink the container made:
    one where a folder should be is refused (DualgitError), one in a file's place is replaced."""
    try:
        _write(name, relative, text)
    except OSError as exc:
        raise DualgitError(f"{folder(name)}/{relative} cannot be written ({exc.strerror or exc}): something "
                           "there is not what dualgit made, and dualgit does not follow links its container made",
                           hint="`git dual up --recreate` makes the container and its state anew") from None


def _write(name: str, relative: str, text: str | None) -> None:
    import secrets

    *parts, leaf = relative.split("/")
    with _folder(name, parts, make=True) as where:
        if text is None:
            try:
                os.unlink(leaf, dir_fd=where)
            except FileNotFoundError:
                pass
            return
        temp = f".{leaf}.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=where)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(temp, leaf, src_dir_fd=where, dst_dir_fd=where)


def listening(name: str) -> dict[int, str]:
    """What listens inside, as the agent last saw it: port -> "wild" (an address the published
    port reaches) or "loop" (loopback only)."""
    found: dict[int, str] = {}
    for line in (read(name, "listen") or "").splitlines():
        port, _, kind = line.partition(" ")
        if port.isdigit() and kind in ("wild", "loop") and found.get(int(port)) != "wild":
            found[int(port)] = kind  # one socket on an address the published port reaches is enough
    return found


@dataclass(frozen=True)
class ServeState:
    port: int
    state: str  # waiting (for setup), starting, running, exited, crashloop, stopped
    since: int  # when it got there (seconds since the epoch)
    code: int | None = None  # the exit code, for exited and crashloop
    listening: bool = False
    oom: bool = False  # killed by the container's memory cap

    def describe(self) -> str:
        if self.state == "running":
            return f"listening on :{self.port}" if self.listening else f"starting on :{self.port}"
        if self.state in ("exited", "crashloop"):
            said = f"exited {self.code}" + (" (command not found)" if self.code == 127 else "")
            if self.oom:
                said = "killed by its memory cap (out of memory: raise it: `git dual config set memory 2g`)"
            return said + (", crash loop: not restarted" if self.state == "crashloop" else ", restarting")
        return {"waiting": "waiting for setup"}.get(self.state, self.state)


def serve_states(name: str, ports: list[int]) -> list[ServeState]:
    """The state of each port's `serve`, as the agent wrote it, and whether the port listens."""
    listen = listening(name) if ports else {}
    found = []
    for port in ports:
        fields = (read(name, f"serve/{port}.state") or "").split()
        state = fields[0] if fields and fields[0] in ("waiting", "starting", "running", "exited", "crashloop",
                                                      "stopped", "removed") else "starting"
        since = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        code = int(fields[2]) if state in ("exited", "crashloop") and len(fields) > 2 and fields[2].isdigit() else None
        found.append(ServeState(port, state, since, code, port in listen, "oom" in fields[3:]))
    return found


def last_lines(name: str, port: int, count: int = 3) -> list[str]:
    lines = [line for line in (read(name, f"serve/{port}.log") or "").splitlines() if not line.startswith("==> ")]
    return [_printable(line) for line in lines[-count:]]


def _printable(text: str) -> str:
    """A line of the container's, safe to print on the host's terminal: no control characters."""
    return "".join(c if c.isprintable() else "?" for c in text)[:300]


def write_serve(name: str, serve: dict[int, str]) -> bool:
    """The commands the agent runs, from `.dual.toml`'s `serve`; whether any changed."""
    changed = False
    present = {int(n) for n in _names(name, "serve.d") if n.isdigit()}
    for port, command in serve.items():
        if read(name, f"serve.d/{port}") != command + "\n":
            write(name, f"serve.d/{port}", command + "\n")
            changed = True
    for port in present - set(serve):
        write(name, f"serve.d/{port}", None)
        changed = True
    return changed


def _names(name: str, relative: str) -> list[str]:
    try:
        with _folder(name, [relative], make=False) as where:
            return [n for n in os.listdir(where) if not n.startswith(".")]
    except OSError:
        return []


def end_serve(api: Engine, name: str, container: str, ports: list[int], again: bool) -> None:
    """End each running `serve` of these ports (its whole process group); with `again`, the agent
    starts it anew at once (a crash loop's too), else it stays stopped until `again`."""
    write(name, "serve.want", None if again else "stop\n")
    if again:
        for port in ports:
            write(name, f"serve/{port}.restart", "1\n")
    pids = " ".join(f"{STATE}/serve/{port}.pid" for port in ports)
    api.run(container, [BUSYBOX, "sh", "-c", f'for f in {pids}; do p=$({BUSYBOX} cat "$f" 2>/dev/null) && '
                                              'kill -TERM -"$p" 2>/dev/null; done; true'])


def setup_done(name: str, done: bool) -> None:
    """Tell the agent whether setup has finished (it starts `serve` after that)."""
    write(name, "setup-done", "1\n" if done else None)


def own_ports(container: Container) -> dict[str, str]:
    """The container's published ports but the agent's relays: the ones `.dual.toml` declares."""
    relays = {str(p) for p in relay_ports(container.http_ports).values()}
    return {port: where for port, where in container.ports.items() if port not in relays}


def has_agent_running(container: Container) -> bool:
    """Whether the container runs the agent: its relay port is published (made with it)."""
    return any(str(port) in container.ports for port in relay_ports(container.http_ports).values()) or (
        not container.http_ports and read(container.name, "listen") is not None)


def serve_ports(name: str) -> list[int]:
    """The ports the host gave the agent a `serve` command for."""
    return sorted(int(n) for n in _names(name, "serve.d") if n.isdigit())


def seen(name: str, http_ports: tuple[int, ...], tcp_ports: tuple[int, ...]) -> dict[str, Any]:
    """What `ls` and `urls` show of a container's agent, from files it wrote (no engine call):
    `serve`, each port's state (with the last lines of its output when it exited), and
    `undeclared`, ports something listens on inside that `.dual.toml` does not declare."""
    listen = listening(name)
    states = serve_states(name, serve_ports(name))
    serve = [{"port": s.port, "state": s.state, "detail": s.describe(), "code": s.code, "since": s.since, "oom": s.oom,
              "last_lines": last_lines(name, s.port) if s.state in ("exited", "crashloop") else []} for s in states]
    known = {*http_ports, *tcp_ports, *relay_ports(http_ports).values()}
    undeclared = sorted(p for p in listen if p not in known)
    return {"serve": serve, "undeclared": undeclared,
            "declare": {str(p): declare_hint(http_ports, p) for p in undeclared}}


def declare_hint(ports: tuple[int, ...], port: int) -> str:
    """The command that declares `port` (`ports` lists those declared already)."""
    return f"git dual config add ports {port}"
