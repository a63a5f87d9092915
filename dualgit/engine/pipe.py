"""A process in a container as a byte pipe, over the engine's own connection (unix, TCP with TLS,
or ssh): what a remote engine's files and ports travel through, so that nothing but the engine's
address is needed. `Engine.attach` starts one; `stdio` joins it to this process's stdin and stdout (the
command unison runs in place of ssh); `bridge` joins it to a socket (a port forward). The engine
multiplexes stdout and stderr on one stream when there is no TTY: `split_frames` takes them apart."""

from __future__ import annotations

import os
import socket
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dualgit.engine.interface import Engine


def split_frames(buffer: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The engine's multiplexed stream (no TTY): the whole frames in `buffer` as (stream, payload),
    stream 1 stdout and 2 stderr, and the bytes left over, the start of the next frame."""
    frames = []
    while len(buffer) >= 8:
        kind, size = struct.unpack(">BxxxL", buffer[:8])
        if len(buffer) < 8 + size:
            break
        frames.append((kind, buffer[8 : 8 + size]))
        buffer = buffer[8 + size :]
    return frames, buffer


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def stdio(api: Engine, container: str, cmd: list[str], user: str | None = None, env: list[str] | None = None,
          stdin: int = 0, stdout: int = 1, stderr: int = 2) -> int:
    """Run `cmd` in the container joined to these descriptors until its output ends: its exit code."""
    sock, rest, exec_id = api.attach(container, cmd, user, env)

    def pump() -> None:
        try:
            while data := os.read(stdin, 65536):
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    import threading

    threading.Thread(target=pump, daemon=True).start()
    buffer = rest
    try:
        while True:
            frames, buffer = split_frames(buffer)
            for kind, payload in frames:
                _write_all(stderr if kind == 2 else stdout, payload)
            chunk = sock.recv(262144)
            if not chunk:
                break
            buffer += chunk
    except OSError:
        return 255
    finally:
        sock.close()
    return max(api.exit_code(exec_id), 0)


def bridge(api: Engine, container: str, cmd: list[str], conn: socket.socket) -> None:
    """Join `conn` to `cmd` in the container (its stdin and stdout) until both directions end: a
    forwarded connection, `cmd` being a relay such as `nc 127.0.0.1 PORT`. Its stderr is dropped."""
    try:
        sock, rest, _ = api.attach(container, cmd)
    except Exception:  # noqa: BLE001 - an engine that is gone or refuses: the connection ends
        conn.close()
        return
    join(sock, rest, conn)


def join(sock: Any, rest: bytes, conn: socket.socket) -> None:
    """Carry bytes between `conn` and an attached exec's stream (`rest`: its first bytes, read
    already) until both directions end; then close both."""

    def upstream() -> None:
        try:
            while data := conn.recv(65536):
                sock.sendall(data)
        except OSError:
            pass
        finally:  # the end of its stdin, however the client went: else the engine keeps the process
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    import threading

    sender = threading.Thread(target=upstream, daemon=True)
    sender.start()
    buffer = rest
    try:
        while True:
            frames, buffer = split_frames(buffer)
            for kind, payload in frames:
                if kind == 1:
                    conn.sendall(payload)
            chunk = sock.recv(262144)
            if not chunk:
                break
            buffer += chunk
        conn.shutdown(socket.SHUT_WR)
        sender.join(timeout=1)  # the relay has ended: what the client sends after now has nowhere to go
    except OSError:
        pass
    finally:
        sock.close()
        conn.close()
