"""Connections to an engine that a plain socket cannot make: TLS on `tcp://`, and `ssh://` through
the docker CLI's own way (`ssh HOST docker system dial-stdio`). Each is a stream with the socket
calls the client and exec use (`recv`, `sendall`, `shutdown`, `settimeout`, `close`), so one
code path frames requests and exec streams for every transport. Imported only for these
transports: a unix socket, the usual case, needs none of this."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading

from dualgit.engine.find import TLS_HINT, Endpoint
from dualgit.errors import DualgitError


class TlsStream:
    """TLS over a connected socket, through memory buffers rather than `ssl.SSLSocket`: exec's
    stdin thread writes while the main thread reads, which one `SSLSocket` does not allow, and
    the end of stdin is sent as TLS's close_notify while the engine's output still comes in."""

    def __init__(self, sock: socket.socket, endpoint: Endpoint) -> None:
        assert endpoint.tls is not None
        self.sock = sock
        self.tls_files = endpoint.tls
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        host = endpoint.address[0]
        self.tls = endpoint.tls.context().wrap_bio(self.incoming, self.outgoing, server_hostname=host)
        self.lock = threading.Lock()
        self.where = endpoint.where()
        self.answered = False  # whether the engine has sent anything past the handshake
        self._handshake(endpoint)

    def _handshake(self, endpoint: Endpoint) -> None:
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
            except ssl.SSLCertVerificationError as exc:
                files = self.tls_files
                against = files.ca or "the system's CA certificates"
                raise DualgitError(f"the engine at {endpoint.where()} has a certificate that {against} "
                                   f"(from {files.named_by}) does not vouch for: {exc.verify_message}",
                                   hint=TLS_HINT) from None
            except ssl.SSLError as exc:
                raise self._refused(exc) from None
            data = self.sock.recv(65536)
            if not data:
                raise DualgitError(f"the engine at {endpoint.where()} closed the connection during the TLS handshake",
                                   hint="is that port TLS? without DOCKER_TLS_VERIFY, dualgit speaks plain tcp")
            self.incoming.write(data)

    def _refused(self, exc: ssl.SSLError | str) -> DualgitError:
        """The engine's "no" to our certificate; with TLS 1.3 it comes after the handshake, as an
        alert on the first read."""
        files = self.tls_files
        sent = f"the client certificate {files.cert}" if files.cert else "no client certificate"
        reason = exc if isinstance(exc, str) else str(exc.reason or exc).replace("_", " ").lower()
        return DualgitError(f"the engine at {self.where} refused the TLS connection, with {sent} "
                            f"(from {files.named_by}): {reason}", hint=TLS_HINT)

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        while True:
            with self.lock:
                try:
                    data: bytes | None = self.tls.read(size)
                except ssl.SSLWantReadError:
                    data = None
                except ssl.SSLZeroReturnError:
                    data = b""
                except ssl.SSLError as exc:
                    if "ALERT" in str(exc.reason):
                        raise self._refused(exc) from None
                    raise OSError(f"TLS: {exc.reason or exc}") from None
                pending = self.outgoing.read()
            if pending:
                self.sock.sendall(pending)
            if data is not None:
                self.answered = True
                return data
            try:
                raw = self.sock.recv(65536)
            except ConnectionResetError:
                raise self._reset() from None
            if not raw:
                return b""
            with self.lock:
                self.incoming.write(raw)

    def _reset(self) -> OSError | DualgitError:
        """The engine reset the connection. Before any answer, that is how an engine may refuse our
        certificate with TLS 1.3 (rather than send its alert); the reset meets us on a read or, on
        a loaded machine, already on the write of our request."""
        if self.answered:
            return ConnectionResetError("the engine reset the connection")
        return self._refused("it closed the connection after the handshake, as an engine does that "
                             "does not accept the certificate")

    def sendall(self, data: bytes) -> None:
        with self.lock:
            self.tls.write(data)
            pending = self.outgoing.read()
        try:
            self.sock.sendall(pending)
        except (ConnectionResetError, BrokenPipeError):
            raise self._reset() from None

    def shutdown(self, _how: int) -> None:
        """The end of what we send: close_notify, after which the engine's answer still reads."""
        with self.lock:
            try:
                self.tls.unwrap()
            except ssl.SSLError:
                pass  # the engine's close_notify has not come yet, as expected
            pending = self.outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def close(self) -> None:
        self.sock.close()


def _control_folder() -> str | None:
    """A folder of this user's only, for ssh's shared connections and forwarded sockets (None:
    none can be had, and each call makes its own connection)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    folder = os.path.join(base, f"dualgit-ssh-{os.getuid()}")
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    info = os.lstat(folder)
    import stat

    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not stat.S_ISDIR(info.st_mode):
        return None
    return folder


def _shared_connection() -> list[str]:
    """ssh's options to share one connection per host among dualgit's calls (ControlMaster): a
    call costs a channel, not a handshake."""
    folder = _control_folder()
    if folder is None:
        return []
    return ["-o", "ControlMaster=auto", "-o", f"ControlPath={folder}/%C", "-o", "ControlPersist=300"]


REMOTE_SOCKET = "/var/run/docker.sock"


def forwarded_socket(endpoint: Endpoint) -> str | None:
    """A socket here that ssh forwards to the engine's default socket on the remote host, through
    the shared connection (made on first use): each call is then a connect, with no `ssh` or
    `docker` process started per call. None when it cannot be had (the engine's socket is
    elsewhere there, or the host refuses forwarding): the caller dials through `SshStream`."""
    folder = _control_folder()
    if folder is None:
        return None
    import hashlib

    local = os.path.join(folder, hashlib.sha256(endpoint.url().encode()).hexdigest()[:16] + ".sock")
    if _answers(local):
        return local
    destination, port = endpoint.address
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", *_shared_connection()]
    if port:
        argv += ["-p", str(port)]
    try:
        os.unlink(local)
    except OSError:
        pass
    forward = ["-o", "StreamLocalBindUnlink=yes", "-O", "forward", "-L", f"{local}:{REMOTE_SOCKET}"]
    try:
        started = subprocess.run([*argv, "-O", "check", "--", destination], capture_output=True, timeout=30)
        if started.returncode != 0:  # no shared connection yet: make it, in the background
            subprocess.run([*argv, "-f", "-N", "--", destination], capture_output=True, timeout=30,
                           start_new_session=True)
        subprocess.run([*argv, *forward, "--", destination], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return local if _answers(local) else None


def _answers(path: str) -> bool:
    """Whether an engine answers `/_ping` on the socket at `path`."""
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        try:
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/1.1 200")
        except OSError:
            return False


class SshStream:
    """The engine's API over ssh, as `docker -H ssh://…` reaches it: `docker system dial-stdio`
    on the remote host, its stdin and stdout one end of a socket pair. ssh runs in a session of
    its own, so a Ctrl-C meant for the command in the container does not cut the connection, and
    with BatchMode, so a hook never waits on a password prompt."""

    def __init__(self, endpoint: Endpoint, timeout: float | None) -> None:
        destination, port = endpoint.address
        self.endpoint = endpoint
        self.sock, theirs = socket.socketpair()
        argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", *_shared_connection()]
        if port:
            argv += ["-p", str(port)]
        try:
            self.proc = subprocess.Popen([*argv, "--", destination, "docker", "system", "dial-stdio"],
                                         stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=subprocess.PIPE,
                                         start_new_session=True)
        except FileNotFoundError:
            raise DualgitError(f"the engine is at {endpoint.url()} ({endpoint.source}), and there is no `ssh` here",
                               hint="install OpenSSH's client (Debian: openssh-client)") from None
        finally:
            theirs.close()
        self.sock.settimeout(timeout)

    def _failed(self) -> DualgitError:
        try:
            self.proc.wait(timeout=5)
            said = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace").strip()
        except subprocess.TimeoutExpired:
            said = ""
        last = said.splitlines()[-1] if said else f"ssh exited {self.proc.returncode}"
        return DualgitError(f"cannot reach the engine at {self.endpoint.url()} ({self.endpoint.source}): {last}",
                            hint="`ssh HOST docker version` must work without a prompt (a key in ssh-agent or "
                                 "~/.ssh/config), and the remote user must reach its engine")

    def recv(self, size: int) -> bytes:
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:  # ssh ended before it read our request
            raise self._failed() from None
        if not data:
            try:
                code = self.proc.wait(timeout=2)  # ssh ends right after the remote end closes
            except subprocess.TimeoutExpired:
                code = None
            if code not in (None, 0):
                raise self._failed()
        return data

    def sendall(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            raise self._failed() from None

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def close(self) -> None:
        self.sock.close()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc.poll()
