"""What `git dual doctor` checks of a worktree on another machine's engine, each with its fix:
this machine's unison, the helper's (the same one, or replaced), the sync (a file there and back,
timed) and the forward (a server inside answering through an exec relay, as the proxy's do)."""

from __future__ import annotations

import os
import socket
import threading
import time

from dualgit.engine.api import ApiError
from dualgit.engine.interface import Engine
from dualgit.engine.pipe import bridge, split_frames
from dualgit.errors import DualgitError
from dualgit.git.locate import Location
from dualgit.naming import container_name
from dualgit.worktrees import agent, labels, state, sync

Check = tuple[str, bool | None, str, str | None]  # name, ok (None: not checked), what was found, the fix
UP = "`git dual up` (it starts the sync process, which makes the helper anew)"
PROBE_PORT = 49000  # a port of the branch's own namespace, for a moment: the forward check's server


def checks(api: Engine, loc: Location) -> list[Check]:
    name = container_name(loc.common_dir, loc.worktree)
    found: list[Check] = [("files", True, "synced both ways with volumes on the engine (its host does not see this "
                                          "machine's folders): `ls` says how the sync stands", None)]
    try:
        unison = sync.local_unison()
    except DualgitError as exc:
        return [*found, ("unison", False, exc.message, exc.hint)]
    found.append(("unison", True, f"{unison.version} here, {len(unison.files)} files carried to the helper", None))
    try:
        container = api.inspect_container(name)
    except (ApiError, DualgitError):
        return [*found, ("sync", None, f"this worktree has no container on the engine yet ({name})",
                         "`git dual up` makes it")]
    found.append(_helper(api, name, unison))
    if not (container.get("State") or {}).get("Running"):
        return [*found, ("sync", None, f"{name} is not running", "`git dual up` starts it")]
    found.append(_round_trip(api, name))
    found.append(_forward(api, name))
    return found


def _helper(api: Engine, name: str, unison: sync.Unison) -> Check:
    try:
        helper = api.inspect_container(sync.helper_name(name))
    except (ApiError, DualgitError):
        return ("helper", False, f"{sync.helper_name(name)} is not on the engine", UP)
    carried = ((helper.get("Config") or {}).get("Labels") or {}).get(labels.SYNC)
    if carried != unison.digest:
        return ("helper", False, f"{sync.helper_name(name)} carries another unison ({carried}) than this machine's "
                                 f"({unison.digest}): it is replaced, not used", UP)
    return ("helper", True, f"{sync.helper_name(name)} carries this machine's unison ({unison.digest})", None)


def _round_trip(api: Engine, name: str, seconds: float = 15) -> Check:
    """A file written here in the state folder, read there; one written there, read here."""
    said = state.sync_status(name)
    if said is None or not said.get("running"):
        return ("sync", False, f"the sync process of {name} is not running", UP)
    token = f"doctor-{os.getpid()}-{time.monotonic_ns()}"
    began = time.monotonic()
    try:
        agent.write(name, token, token)
        while time.monotonic() - began < seconds:
            code, out = api.run(name, [agent.BUSYBOX, "sh", "-c", f"cat {agent.STATE}/{token} && "
                                        f"echo back > {agent.STATE}/{token}.back"], timeout=10)
            if code == 0 and out.decode(errors="replace").startswith(token):
                break
            time.sleep(0.05)
        there = time.monotonic() - began
        while agent.read(name, f"{token}.back") is None:
            if time.monotonic() - began > seconds:
                return ("sync", False, f"a file sent to the engine did not come back within {seconds:.0f} s "
                                       f"({said.get('error') or 'no error said'})",
                        "`git dual logs` and the sync's log under the state folder say why; " + UP)
            time.sleep(0.05)
        back = time.monotonic() - began
    finally:
        agent.write(name, token, None)
        agent.write(name, f"{token}.back", None)
    return ("sync", True, f"a file went there in {there:.1f} s and came back in {back - there:.1f} s", None)


def _forward(api: Engine, name: str) -> Check:
    """A server started inside for a moment, reached through an exec relay (`nc` in the container,
    over the engine's connection): what every forwarded connection of the branch goes through."""
    serve = f"echo $$ && exec {agent.BUSYBOX} httpd -f -p 127.0.0.1:{PROBE_PORT} -h {agent.BIN}"
    pid, answer, server = "", b"", None
    try:
        server, said, _ = api.attach(name, [agent.BUSYBOX, "sh", "-c", serve])  # lives while attached
        while b"\n" not in said:
            chunk = server.recv(256)
            if not chunk:
                break
            said += chunk
        pid = b"".join(payload for _kind, payload in split_frames(said)[0]).decode(errors="replace").strip()
        for _ in range(10):  # until it listens
            ours, theirs = socket.socketpair()
            relay = [agent.BUSYBOX, "nc", "127.0.0.1", str(PROBE_PORT)]
            threading.Thread(target=bridge, args=(api, name, relay, theirs), daemon=True).start()
            ours.settimeout(15)
            ours.sendall(b"GET /busybox HTTP/1.0\r\n\r\n")
            answer = ours.recv(64)
            ours.close()
            if answer:
                break
            time.sleep(0.2)
    except (ApiError, DualgitError, OSError) as exc:
        return ("forward", False, f"a relay into {name} does not carry a connection: {exc}",
                "the engine must allow exec into the container; see `git dual logs`")
    finally:
        try:
            if pid.isdigit():
                api.run(name, [agent.BUSYBOX, "kill", pid], timeout=10)
        except (ApiError, DualgitError, OSError):
            pass
        if server is not None:
            server.close()
    if not answer.startswith(b"HTTP/1."):
        return ("forward", False, f"a server inside {name} does not answer through a relay ({answer[:40]!r})",
                "see `git dual logs`; " + UP)
    forwards = (state.sync_status(name) or {}).get("forwards")
    listed = ", ".join(f":{port} at {where}" for port, where in forwards.items()) if isinstance(forwards, dict) else ""
    return ("forward", True, f"a server inside answers through a relay; the branch's ports here: {listed or 'none yet'}", None)

