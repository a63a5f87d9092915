"""Which engine to speak to, found the way the `docker` CLI finds it: `DOCKER_HOST`, else the
context `DOCKER_CONTEXT` or the CLI's config names, else the default socket when it answers, else
the first socket that answers among the places engines put theirs (`candidates`). Standard library
only: `git dual exec` asks on every run, and the usual answer costs a `stat` and a `connect`."""

from __future__ import annotations

import os

from dualgit.errors import DualgitError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SOCKET = "/var/run/docker.sock"
ENGINE_HINT = ("start the engine (`scripts/setup` here, `sudo dockerd &`, or Docker Desktop), or point DOCKER_HOST "
               "or `docker context use` at it; `git dual doctor` says what was tried")


class Tls:
    """Client TLS for a `tcp://` engine: the CA that signs the engine's certificate (None: the
    system's), the client's certificate and key (None: none sent), whether the engine's
    certificate is checked at all, and what named the files (for errors)."""

    __slots__ = ("ca", "cert", "key", "verify", "named_by")

    def __init__(self, ca: str | None, cert: str | None, key: str | None, verify: bool, named_by: str) -> None:
        self.ca, self.cert, self.key, self.verify, self.named_by = ca, cert, key, verify, named_by

    def context(self) -> Any:
        """The `ssl` context, its files loaded; a file that does not load is one line naming it."""
        import ssl

        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca:
            try:
                context.load_verify_locations(cafile=self.ca)
            except (OSError, ssl.SSLError) as exc:
                raise DualgitError(f"the CA certificate {self.ca} (from {self.named_by}) does not load: {_reason(exc)}",
                                   hint=TLS_HINT) from None
        if self.cert and self.key:
            try:
                context.load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as exc:
                raise DualgitError(f"the client certificate {self.cert} with key {self.key} (from {self.named_by}) "
                                   f"does not load: {_reason(exc)}", hint=TLS_HINT) from None
        return context

    def as_dict(self) -> dict[str, Any]:
        return {"ca": self.ca, "cert": self.cert, "key": self.key, "verify": self.verify, "from": self.named_by}


TLS_HINT = ("DOCKER_CERT_PATH (or the context's TLS folder) needs ca.pem, cert.pem and key.pem as "
            "`docker --tlsverify` reads them")


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)


class Endpoint:
    """Where the engine is, and what said so. `kind` is `unix` (address: the socket's path), `tcp`
    (address: host and port; `tls` set for a TLS engine) or `ssh` (address: the destination
    `[user@]host` and the port, or 0 for ssh's own)."""

    __slots__ = ("kind", "address", "source", "tls")

    def __init__(self, kind: str, address: Any, source: str, tls: Tls | None = None) -> None:
        self.kind = kind
        self.address = address
        self.source = source  # what said so: "from DOCKER_HOST", "from the context NAME", "the default socket", ...
        self.tls = tls

    def url(self) -> str:
        if self.kind == "unix":
            return f"unix://{self.address}"
        if self.kind == "ssh":
            destination, port = self.address
            return f"ssh://{destination}" + (f":{port}" if port else "")
        return "tcp://%s:%s" % self.address

    def where(self) -> str:
        """The address for a person: the socket's path, HOST:PORT, or the ssh url."""
        if self.kind == "unix":
            return str(self.address)
        return self.url() if self.kind == "ssh" else "%s:%s" % self.address

    def is_local(self) -> bool:
        """Whether the engine runs on this machine, so that a bind mount of a worktree's path shows
        its files: a unix socket, or tcp to loopback."""
        if self.kind == "unix":
            return True
        return self.kind == "tcp" and (self.address[0] in ("localhost", "::1") or self.address[0].startswith("127."))


def candidates() -> list[tuple[str, str]]:
    """(engine, socket path) in the order tried when nothing names one (the README lists it)."""
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
        ("Podman", "/run/podman/podman.sock"),
        ("Podman", os.path.join(runtime, "podman", "podman.sock")),
    ]


def endpoint() -> Endpoint:
    """The engine to use, found in the docker CLI's order. Raises DualgitError for an address
    that names no engine dualgit speaks to."""
    host = os.environ.get("DOCKER_HOST", "")
    if host:
        return parse(host, "DOCKER_HOST", "from DOCKER_HOST", _env_tls())
    context = os.environ.get("DOCKER_CONTEXT") or _current_context()
    if context and context != "default":
        return _from_context(context)
    if os.path.exists(DEFAULT_SOCKET):  # whether it answers is asked by connecting: see `fallback`
        return Endpoint("unix", DEFAULT_SOCKET, DEFAULT_SOURCE)
    return fallback() or Endpoint("unix", DEFAULT_SOCKET, "the default socket (no engine answers on the usual sockets)")


DEFAULT_SOURCE = "the default socket"
DEFAULT = "default"  # the engine named by nothing in dualgit's config: the one `endpoint` finds


def named(name: str | None) -> Endpoint:
    """The engine dualgit's config names (`engine`): DEFAULT (or nothing) for the one `endpoint`
    finds, an address (unix://, tcp://, ssh://), or a Docker context's name."""
    if not name or name == DEFAULT:
        return endpoint()
    if "://" in name:
        return parse(name, f"the engine {name}", f"named by dualgit's config ({name})")
    return _from_context(name)


def chosen(name: str | None) -> Endpoint | None:
    """`named`, but None for DEFAULT: a client given None finds the engine as it always does (the
    lean one's fallback to another socket, docker-py's `settled`)."""
    return None if not name or name == DEFAULT else named(name)


def fallback() -> Endpoint | None:
    """When nothing named an engine and the default socket does not answer: the first of the other
    usual sockets that answers (None: none does). The lean client asks this only after its connect
    to the default socket failed, so the usual run makes no probe connection."""
    for engine, path in candidates()[1:]:
        if _answers(path):
            return Endpoint("unix", path, f"the {engine} socket found")
    return None


def settled(found: Endpoint) -> Endpoint:
    """`found`, or, for a default socket that does not answer, the engine `fallback` finds."""
    if found.source == DEFAULT_SOURCE and not _answers(DEFAULT_SOCKET):
        return fallback() or found
    return found


def _answers(path: str) -> bool:
    """Whether something listens on the socket `path` (one that we may not open counts: the
    error then says so). A connect is a few microseconds; most paths do not exist at all."""
    if not os.path.exists(path):
        return False
    import _socket

    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except PermissionError:
        return True
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _env_tls() -> Tls | None:
    """TLS as the CLI reads it from the environment: DOCKER_TLS_VERIFY (any value) checks the
    engine's certificate against DOCKER_CERT_PATH's ca.pem; DOCKER_TLS alone encrypts without."""
    verify = os.environ.get("DOCKER_TLS_VERIFY", "") != ""
    if not verify and os.environ.get("DOCKER_TLS", "") in ("", "0", "false"):
        return None
    folder = os.environ.get("DOCKER_CERT_PATH") or _config_dir()
    return _tls_files(folder, verify, "DOCKER_CERT_PATH" if os.environ.get("DOCKER_CERT_PATH") else "DOCKER_TLS_VERIFY")


def _tls_files(folder: str, verify: bool, named_by: str) -> Tls:
    ca, cert, key = (os.path.join(folder, name) for name in ("ca.pem", "cert.pem", "key.pem"))
    if verify and not os.path.isfile(ca):
        raise DualgitError(f"{named_by} asks for a checked TLS engine, and {ca} is not there", hint=TLS_HINT)
    has_cert, has_key = os.path.isfile(cert), os.path.isfile(key)
    if has_cert != has_key:
        missing = key if has_cert else cert
        raise DualgitError(f"{missing} is not there, and a client certificate needs both cert.pem and key.pem "
                           f"(from {named_by})", hint=TLS_HINT)
    return Tls(ca if os.path.isfile(ca) else None, cert if has_cert else None, key if has_key else None, verify, named_by)


def parse(host: str, name: str, source: str, tls: Tls | None = None) -> Endpoint:
    """The endpoint `host` names; `name` says where it was set, in errors."""
    if host.startswith("unix://"):
        return Endpoint("unix", host[len("unix://"):], source)
    if host.startswith(("tcp://", "https://", "http://")):
        hostport = host.split("://", 1)[1].split("/", 1)[0]
        address, _, port = hostport.rpartition(":")
        if not port.isdigit():
            address, port = hostport, ""
        if host.startswith("https://") and tls is None:
            tls = Tls(None, None, None, True, name)
        default = 2376 if tls is not None else 2375
        return Endpoint("tcp", (address.strip("[]") or "127.0.0.1", int(port or default)), source, tls)
    if host.startswith("ssh://"):
        rest = host[len("ssh://"):].split("/", 1)[0]
        destination, _, port = rest.rpartition(":")
        if not port.isdigit() or "]" in port:
            destination, port = rest, ""
        if not destination.split("@")[-1]:
            raise DualgitError(f"{name}={host} names no host", hint="write it as ssh://[USER@]HOST[:PORT]")
        return Endpoint("ssh", (destination, int(port or 0)), source)
    raise DualgitError(f"{name}={host} is not an engine address dualgit knows (unix://, tcp:// and ssh:// are)",
                       hint="set DOCKER_HOST to unix:///path/to/docker.sock, tcp://HOST:PORT or ssh://USER@HOST")


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
    folder = os.path.join(_config_dir(), "contexts", "tls", digest, "docker")
    tls = None
    if host.startswith("tcp://") and (os.path.isdir(folder) or docker.get("SkipTLSVerify")):
        tls = _tls_files(folder, not docker.get("SkipTLSVerify"), f"the context {name}'s TLS folder")
    return parse(host, f"the Docker context {name!r}", f"from the context {name}", tls)
