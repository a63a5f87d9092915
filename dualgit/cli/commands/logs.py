"""`git dual logs`: a worktree's setup log, followed with `-f` while setup runs."""

from __future__ import annotations

import os
import sys
import time

from dualgit.errors import DualgitError
from dualgit.naming import container_name
from dualgit.worktrees import agent, setup_state
from dualgit.worktrees.inventory import killed_by_memory_cap
from dualgit.worktrees.targets import targeted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.engine.interface import Engine


def logs(target: str | None = None, follow: bool = False, serve: bool = False, service: str | None = None) -> int:
    _repo, api, wt, mine = targeted(target)
    name = mine[0].name if mine else container_name(wt.common_dir, wt.path)
    if service is not None:
        return _service_logs(api, wt.label, mine[0].services if mine else (), name, service, follow)
    if mine and mine[0].state == "exited" and killed_by_memory_cap(api, mine[0].id):
        print(f"dualgit: {wt.label}: {name} was killed by its memory cap (out of memory): raise `memory` in "
              ".dual.toml, then `git dual up`", file=sys.stderr)
    if serve:
        return _serve_logs(wt.label, name, follow)
    if not mine and not setup_state.read(name).before_container:
        raise DualgitError(f"{wt.label} has no container, so no setup log", hint="`git dual up` makes it")
    log_file = setup_state.paths(name)[1]
    if not os.path.exists(log_file):
        print(f"{wt.label}: no setup has run for {name}")
        return 0
    with open(log_file, "rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                continue
            if not follow or setup_state.read(name).status != "running":
                break
            time.sleep(0.2)
    started = agent.read_from(name, "start.log", 0)  # what runs on every start, inside (postStartCommand)
    if started:
        sys.stdout.write(started.decode("utf-8", "replace"))
    state = setup_state.read(name)
    return 1 if state.status == "failed" else 0


def _service_logs(api: Engine, label: str, services: tuple[str, ...], name: str, service: str, follow: bool) -> int:
    """The service's container's output, as the engine keeps it (stdout and stderr), followed with `follow`."""
    from dualgit.engine.api import ApiError
    from dualgit.engine.dockerpy import DockerPy
    from dualgit.worktrees.inventory import container_for

    if service not in services:
        known = ", ".join(services) or "none"
        raise DualgitError(f"{label} has no service {service} (its services: {known})",
                           hint="`[services.NAME]` in .dual.toml declares one; `git dual up` makes it")
    from dualgit.engine.several import holding

    engine = DockerPy(holding(api, name).endpoint)
    try:
        for chunk in engine.api.logs(container_for(name, service), stream=True, follow=follow):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
    except ApiError as exc:
        raise DualgitError(f"no log for service {service} of {label}: {exc.message}",
                           hint="`git dual up` makes its container") from None
    except Exception as exc:  # noqa: BLE001 - docker-py's own errors: said in a line
        raise DualgitError(f"no log for service {service} of {label}: {exc}", hint="`git dual up` makes its container") from None
    return 0


def _serve_logs(label: str, name: str, follow: bool) -> int:
    """Each `serve` port's output (the agent's log in the shared folder), followed with `follow`."""
    ports = agent.serve_ports(name)
    if not ports:
        raise DualgitError(f"{label} has no `serve` output", hint='`serve = "npm run dev"` in .dual.toml runs a dev server')
    offsets = dict.fromkeys(ports, 0)
    while True:
        for port in ports:
            text = agent.read_from(name, f"serve/{port}.log", offsets[port])
            if text:
                offsets[port] += len(text)
                prefix = f"[:{port}] " if len(ports) > 1 else ""
                sys.stdout.write("".join(prefix + line for line in text.decode(errors="replace").splitlines(True)))
                sys.stdout.flush()
        if not follow:
            break
        time.sleep(0.3)
    states = agent.serve_states(name, ports)
    return 1 if any(s.state in ("exited", "crashloop") for s in states) else 0
