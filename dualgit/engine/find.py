"""Which engine to speak to, found the way the `docker` CLI finds it: `DOCKER_HOST`, else the
context `DOCKER_CONTEXT` or the CLI's config names, else the first socket that exists among the
places engines put theirs (Docker, Docker Desktop, rootless Docker, colima, OrbStack, Rancher
Desktop, Podman). Standard library only: `git dual exec` asks on every run, and the usual answer
costs a few `stat` calls."""

from __future__ import annotations

import os

from dualgit.errors import DualgitError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SOCKET = "/var/run/docker.sock"
ENGINE_HINT = ("start the engine (`scripts/setup` here, `sudo dockerd &`, or Docker Desktop), or point DOCKER_HOST "
               "or `docker context use` at it; `git dual doctor` says what was tried")


class Endpoint:
    """Where the engine is: `unix` (a socket path) or `tcp` (host and port), and what said so."""

    __slots__ = ("kind", "address", "source")

    def __init__(self, kind: str, address: Any, source: str) -> None:
        self.kind = kind
        self.address = address  # the socket's path, or (host, port)
        self.source = source  # what said so: "from DOCKER_HOST", "from the context NAME", "the default socket", ...

    def url(self) -> str:
        return f"unix://{self.address}" if self.kind == "unix" else "tcp://%s:%s" % self.address


def candidates() -> list[tuple[str, str]]:
    """(engine, socket path) in the order tried when nothing names one."""
    home = os.path.expanduser("~")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return [
        ("Docker", DEFAULT_SOCKET),
        ("Docker Desktop", os.path.join(home, ".docker", "run", "docker.sock")),
        ("rootless Docker", os.path.join(runtime, "docker.sock")),
        ("colima", os.path.join(home, ".colima", "default", "docker.sock")),
        ("colima", os.path.join(home, ".colima", "docker.sock")),
        ("OrbStack", os.path.join(home, ".orbstack", "run", "docker.sock")),
        ("Rancher Desktop", os.path.join(home, ".rd", "docker.sock")),
        ("Podman", os.path.join(runtime, "podman", "podman.sock")),
        ("Podman", "/run/podman/podman.sock"),
    ]


def endpoint() -> Endpoint:
    """The engine to use. Raises DualgitError for what dualgit cannot speak to (TLS, ssh)."""
    host = os.environ.get("DOCKER_HOST", "")
    if host:
        return parse(host, "DOCKER_HOST", "from DOCKER_HOST", tls=os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0"))
    context = os.environ.get("DOCKER_CONTEXT") or _current_context()
    if context and context != "default":
        return _from_context(context)
    for engine, path in candidates():
        if os.path.exists(path):
            return Endpoint("unix", path, "the default socket" if path == DEFAULT_SOCKET else f"the {engine} socket found")
    return Endpoint("unix", DEFAULT_SOCKET, "the default socket (none of the usual sockets exists)")


def parse(host: str, name: str, source: str, tls: bool = False) -> Endpoint:
    """The endpoint `host` names; `name` says where it was set, in errors."""
    if tls:
        raise DualgitError(f"{name} asks for TLS ({host}), which dualgit does not speak yet",
                           hint="reach the engine through a unix socket or an ssh tunnel "
                                "(`ssh -NL /tmp/docker.sock:/var/run/docker.sock HOST`, then DOCKER_HOST=unix:///tmp/docker.sock)")
    if host.startswith("unix://"):
        return Endpoint("unix", host[len("unix://"):], source)
    if host.startswith("tcp://"):
        hostport = host[len("tcp://"):].rstrip("/")
        name, _, port = hostport.rpartition(":")
        if not port.isdigit():
            name, port = hostport, ""
        return Endpoint("tcp", (name.strip("[]") or "127.0.0.1", int(port or 2375)), source)
    if host.startswith("ssh://"):
        raise DualgitError(f"{name} is an ssh engine ({host}), which dualgit does not reach by itself yet",
                           hint="forward its socket (`ssh -NL /tmp/docker.sock:/var/run/docker.sock HOST`), "
                                "then DOCKER_HOST=unix:///tmp/docker.sock")
    raise DualgitError(f"{name}={host} is not an engine address dualgit knows (unix:// and tcp:// are)",
                       hint="set DOCKER_HOST to unix:///path/to/docker.sock or tcp://HOST:PORT")


def _config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def _current_context() -> str:
    """The CLI's `docker context use` choice, from its config.json (read only when it names one)."""
    try:
        with open(os.path.join(_config_dir(), "config.json"), "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    if b'"currentContext"' not in raw:
        return ""
    import json

    try:
        value = json.loads(raw).get("currentContext", "")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _from_context(name: str) -> Endpoint:
    import hashlib
    import json

    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = os.path.join(_config_dir(), "contexts", "meta", digest, "meta.json")
    try:
        with open(meta, "rb") as f:
            docker = json.load(f)["Endpoints"]["docker"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DualgitError(f"the Docker context {name!r} is not there ({meta})",
                           hint="`docker context ls` lists them; `docker context use default` goes back") from None
    host = docker.get("Host", "") if isinstance(docker, dict) else ""
    tls = os.path.isdir(os.path.join(_config_dir(), "contexts", "tls", digest, "docker"))
    return parse(host, f"the Docker context {name!r}", f"from the context {name}", tls=tls or bool(docker.get("SkipTLSVerify")))
