"""A small Docker Engine API client over the engine's socket, with the standard library alone
(json, and ssl for TLS in `streams`).

`git dual exec` and the post-checkout hook stay off docker-py (`tests/test_lean.py` pins what they
import), so container work speaks HTTP/1.1 to the engine directly: one short connection per
request, and a hijacked connection for exec streams.
"""

from __future__ import annotations

import _socket as socket  # the C module: exec's path needs none of socket.py
import json
import time

from dualgit import chunked
from dualgit.engine import find
from dualgit.engine.find import Endpoint
from dualgit.errors import DualgitError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")

LIBPOD_NETWORK = "/v4.0.0/libpod/networks/create"  # Podman's own API, beside its Docker one


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def quote(text: str) -> str:
    """Percent-encode everything but RFC 3986's unreserved characters."""
    return "".join(chr(b) if b in SAFE else "%%%02X" % b for b in text.encode("utf-8", "surrogateescape"))


def urlencode(query: dict[str, Any]) -> str:
    return "&".join(f"{quote(str(k))}={quote(str(v))}" for k, v in query.items())


def path(template: str, *parts: str) -> str:
    """Fill %s slots in an API path with URL-quoted parts (names come from users and git)."""
    return template % tuple(quote(p) for p in parts)


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class DockerAPI:
    def __init__(self, endpoint: Endpoint | None = None) -> None:
        self.use(endpoint or find.endpoint())

    def use(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.forwarded: str | None = None  # ssh: the socket here that ssh forwards to the engine's ("": none)
        self.address = self.endpoint.address
        if self.endpoint.kind == "unix":
            self.family = socket.AF_UNIX
        else:
            self.family = socket.AF_INET6 if ":" in str(self.address[0]) else socket.AF_INET

    def connect(self, timeout: float | None = 30.0) -> Any:
        """A connection to the engine: a socket, or for TLS and ssh a stream with the same calls."""
        if self.endpoint.kind == "ssh":
            from dualgit.engine.streams import SshStream, forwarded_socket

            if self.forwarded is None:
                self.forwarded = forwarded_socket(self.endpoint) or ""
            if self.forwarded:
                forwarded = socket.SocketType(socket.AF_UNIX, socket.SOCK_STREAM)
                forwarded.settimeout(timeout)
                try:
                    forwarded.connect(self.forwarded)
                    return forwarded
                except OSError:  # its ssh ended: the next call makes it anew
                    forwarded.close()
                    self.forwarded = None
            return SshStream(self.endpoint, timeout)
        sock = socket.SocketType(self.family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.address)
        except OSError as exc:
            sock.close()
            other = find.fallback() if self.endpoint.source == find.DEFAULT_SOURCE else None
            if other is not None:  # the default socket is dead: the next engine that answers, as `endpoint` says
                self.use(other)
                return self.connect(timeout)
            raise DualgitError(f"cannot reach the Docker engine ({self.endpoint.where()}: {exc.strerror or exc})",
                               hint=f"that address is {self.endpoint.source}; {find.ENGINE_HINT}")
        if self.endpoint.tls is not None:
            import socket as socket_module

            from dualgit.engine.streams import TlsStream

            plain = socket_module.socket(fileno=sock.detach())
            plain.settimeout(timeout)
            return TlsStream(plain, self.endpoint)
        return sock

    @staticmethod
    def _head(method: str, url: str, body: bytes | None, extra: str = "", kind: str = "application/json") -> bytes:
        head = f"{method} {url} HTTP/1.1\r\nHost: docker\r\nUser-Agent: dualgit\r\n{extra}"
        if body is not None:
            head += f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + (body or b"")

    def request(
        self,
        method: str,
        url: str,
        payload: Any = None,
        query: dict[str, Any] | None = None,
        timeout: float | None = 60.0,
        ok: tuple[int, ...] = (200, 201, 204, 304),
    ) -> Response:
        if query:
            url += "?" + urlencode(query)
        raw = isinstance(payload, bytes)  # a tar archive (`put_archive`), sent as it is
        body = payload if raw else None if payload is None else json.dumps(payload).encode()
        sock = self.connect(timeout)
        try:
            sock.sendall(self._head(method, url, body, "Connection: close\r\n", "application/x-tar" if raw else
                                    "application/json"))
            response = _read_response(sock)
        except OSError as exc:
            raise DualgitError(f"the Docker engine stopped answering ({exc})", hint=find.ENGINE_HINT)
        finally:
            sock.close()
        if response.status not in ok:
            try:  # not the hot path: the json module, since messages quote names
                message = str(response.json().get("message", ""))
            except (ValueError, AttributeError):
                message = response.body.decode(errors="replace").strip()
            # Podman says a container's state forbids the call with a 500 where Docker says 409
            status = 409 if response.status == 500 and "container state improper" in message else response.status
            raise ApiError(status, message)
        return response

    def get(self, url: str, query: dict[str, Any] | None = None) -> Any:
        return self.request("GET", url, query=query).json()

    def post(self, url: str, payload: Any = None, query: dict[str, Any] | None = None) -> Any:
        return self.request("POST", url, payload if payload is not None else {}, query).json()

    def remove(self, url: str, query: dict[str, Any] | None = None) -> bool:
        """DELETE an object, idempotently: whether this call removed it. "No such object" (404) and
        "removal already in progress" (409) both mean another process (the proxy's watcher, a
        background gc, another command) did or is doing the work, so they count as done. The one
        rule for every removal, containers and volumes alike."""
        try:
            self.request("DELETE", url, query=query)
        except ApiError as exc:
            if exc.status == 404 or (exc.status == 409 and "in progress" in exc.message):
                return False
            raise
        return True

    def stream(self, url: str, query: dict[str, Any] | None = None) -> Any:
        """GET a streaming endpoint (`/events`): yield each JSON document as it arrives."""
        if query:
            url += "?" + urlencode(query)
        sock = self.connect(None)
        try:
            sock.sendall(self._head("GET", url, None))
            status, headers, data = _read_head(sock)
            if status != 200:
                raise ApiError(status, data.decode(errors="replace"))
            chunks = chunked.Chunked(keep=True) if headers.get("transfer-encoding", "").lower() == "chunked" else None
            body = bytearray()
            while True:
                if chunks is not None:
                    chunks.feed(data)
                    body += chunks.take()
                else:
                    body += data
                while b"\n" in body:
                    line, _, rest = bytes(body).partition(b"\n")
                    body[:] = rest
                    if line.strip():
                        yield json.loads(line)
                data = b"" if chunks is not None and chunks.ended else sock.recv(65536)
                if not data:
                    return
        finally:
            sock.close()

    def hijack(self, url: str, payload: Any, timeout: float | None = None) -> tuple[Any, bytes]:
        """POST with `Upgrade: tcp`; return the raw stream and any bytes already read past the head."""
        body = json.dumps(payload).encode()
        sock = self.connect(timeout)
        sock.sendall(self._head("POST", url, body, "Connection: Upgrade\r\nUpgrade: tcp\r\n"))
        status, _, rest = _read_head(sock)
        if status not in (101, 200):
            sock.close()
            raise ApiError(status, rest.decode(errors="replace").strip())
        return sock, rest

    # The calls of `interface.Engine`, which code above the engine layer makes.

    def version(self) -> Any:
        return self.get("/version")

    def info(self) -> Any:
        return self.get("/info")

    def containers(self, filters: dict[str, list[str]]) -> Any:
        return self.get("/containers/json", {"all": 1, "filters": json.dumps(filters)})

    def inspect_container(self, name: str) -> Any:
        return self.get(path("/containers/%s/json", name))

    def create_container(self, body: dict[str, Any], name: str) -> str:
        return str(self.request("POST", "/containers/create", body, {"name": name}).json()["Id"])

    def start(self, container: str) -> None:
        self.request("POST", path("/containers/%s/start", container), {})

    def pause(self, container: str) -> None:
        self.request("POST", path("/containers/%s/pause", container), {})

    def unpause(self, container: str) -> None:
        self.request("POST", path("/containers/%s/unpause", container), {})

    def update_container(self, container: str, resources: dict[str, Any]) -> None:
        """Change a container's resources (Memory, MemorySwap, NanoCpus) while it runs."""
        self.request("POST", path("/containers/%s/update", container), resources)

    def stop(self, container: str, timeout: int) -> None:
        self.request("POST", path("/containers/%s/stop", container), query={"t": timeout})

    def wait(self, container: str) -> int:
        """Until the container exits: its exit code."""
        return int(self.request("POST", path("/containers/%s/wait", container), {}, timeout=120).json()["StatusCode"])

    def remove_container(self, container: str) -> bool:
        return self.remove(path("/containers/%s", container), {"force": 1, "v": 1})

    def volumes(self, filters: dict[str, list[str]]) -> Any:
        return self.get("/volumes", {"filters": json.dumps(filters)}).get("Volumes") or []

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self.request("POST", "/volumes/create", {"Name": name, "Labels": labels})

    def remove_volume(self, name: str) -> bool:
        return self.remove(path("/volumes/%s", name))

    def inspect_image(self, name: str) -> Any:
        return self.get(path("/images/%s/json", name))

    def inspect_network(self, name: str) -> Any:
        return self.get(path("/networks/%s", name))

    def create_network(self, name: str, labels: dict[str, str], options: dict[str, str]) -> None:
        """A bridge network. Podman's Docker API drops the options it has no Docker name for
        (`isolate`): with those, its own API takes them (`LIBPOD_NETWORK`)."""
        if "isolate" in options:
            self.request("POST", LIBPOD_NETWORK, {"name": name, "driver": "bridge", "labels": labels, "options": options})
            return
        self.request("POST", "/networks/create", {"Name": name, "Driver": "bridge", "Labels": labels,
                                                  "Options": options, "CheckDuplicate": True})

    def remove_network(self, name: str) -> bool:
        return self.remove(path("/networks/%s", name))

    def events(self, filters: dict[str, list[str]]) -> Any:
        return self.stream("/events", {"filters": json.dumps(filters)})

    def run(self, container: str, cmd: list[str], user: str | None = None, env: list[str] | None = None,
            timeout: float | None = 30.0, limit: int = 1 << 20) -> tuple[int, bytes]:
        """Run `cmd` in the container to its end, detached from any terminal of ours: its exit code
        and output (stdout and stderr together, up to `limit` bytes). For dualgit's own short
        commands (reading /proc, preparing the user), never a person's."""
        body: dict[str, Any] = {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True, "Tty": True,
                                "Env": env or []}
        if user is not None:
            body["User"] = user
        created = self.request("POST", path("/containers/%s/exec", container), body, timeout=timeout)
        exec_id = created.json()["Id"]
        sock, data = self.hijack(path("/exec/%s/start", exec_id), {"Detach": False, "Tty": True}, timeout)
        try:
            while len(data) < limit:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        return self.exit_code(exec_id), data

    def attach(self, container: str, cmd: list[str], user: str | None = None, env: list[str] | None = None,
               timeout: float | None = 30.0) -> tuple[Any, bytes, str]:
        """Start `cmd` in the container with stdin, stdout and stderr attached (no TTY): the stream
        (stdout and stderr multiplexed: `pipe.split_frames`), the bytes read past the response's
        head, and the exec's id (for `exit_code`)."""
        body: dict[str, Any] = {"Cmd": cmd, "AttachStdin": True, "AttachStdout": True, "AttachStderr": True,
                                "Tty": False, "Env": env or []}
        if user is not None:
            body["User"] = user
        exec_id = self.request("POST", path("/containers/%s/exec", container), body, timeout=timeout).json()["Id"]
        sock, rest = self.hijack(path("/exec/%s/start", exec_id), {"Detach": False, "Tty": False}, timeout)
        sock.settimeout(None)
        return sock, rest, exec_id

    def put_archive(self, container: str, folder: str, archive: bytes) -> None:
        """Unpack a tar `archive` at `folder` in the container (created or running)."""
        self.request("PUT", path("/containers/%s/archive", container), archive, {"path": folder}, timeout=120)

    def exit_code(self, exec_id: str) -> int:
        """An ended exec's exit code (-1: none recorded). Its stream can end a moment before the
        engine records the exit, so a running one is asked again for up to 2 s."""
        for _ in range(100):
            info = self.request("GET", path("/exec/%s/json", exec_id)).json()
            if not info.get("Running"):
                break
            time.sleep(0.02)
        code = info.get("ExitCode")
        return code if isinstance(code, int) else -1


def _read_head(sock: Any) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("connection closed before the response head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, rest


def _read_response(sock: Any) -> Response:
    status, headers, data = _read_head(sock)
    chunks = [data]
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    raw = b"".join(chunks)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        raw = chunked.decode(raw)
    elif "content-length" in headers:
        raw = raw[: int(headers["content-length"])]
    return Response(status, headers, raw)
