"""`git dual serve [--restart|--stop]`: the branch's dev server (`serve` in .dual.toml), which the
agent runs inside the container; this says how it stands, or starts, restarts or stops it."""

from __future__ import annotations

import json
import time

from dualgit.config import load
from dualgit.engine.dockerpy import DockerPy
from dualgit.errors import DualgitError
from dualgit.worktrees import agent, engines
from dualgit.worktrees.inventory import Container
from dualgit.worktrees.targets import targeted


def serve(target: str | None = None, restart: bool = False, stop: bool = False, as_json: bool = False) -> int:
    if restart and stop:
        raise DualgitError("give --restart or --stop, not both", hint="`git dual serve --stop` stops it")
    _repo, api, wt, mine = targeted(target, engines.client(DockerPy))
    config = load(wt.path)
    if not config.serve:
        raise DualgitError(f"{wt.label} has no `serve` in .dual.toml",
                           hint='add one: serve = "npm run dev" (the command that starts its dev server)')
    running = [c for c in mine if c.state == "running"]
    if not running:
        raise DualgitError(f"{wt.label} has no running container", hint="`git dual up` starts it, and `serve` with it")
    container = running[0]
    if not agent.has_agent_running(container):
        raise DualgitError(f"{container.name} was made without dualgit's agent, which runs `serve`",
                           hint="`git dual up --recreate` makes it anew with the agent")
    if agent.write_serve(container.name, config.serve):
        restart = restart or not stop  # a changed command takes effect now
    if stop:
        agent.end_serve(api, container.name, container.id, sorted(config.serve), again=False)
        time.sleep(0.5)
    elif restart or _ended(container):
        agent.end_serve(api, container.name, container.id, sorted(config.serve), again=True)
        time.sleep(1.2)  # the agent looks once a second
    states = agent.serve_states(container.name, sorted(config.serve))
    if as_json:
        print(json.dumps([{"port": s.port, "state": s.state, "detail": s.describe(), "code": s.code}
                          for s in states], indent=2))
        return 0
    for s in states:
        print(f"{wt.label}: serve :{s.port} {s.describe()} ({config.serve[s.port]})")
    return 0


def _ended(container: Container) -> bool:
    return any(s.state in ("crashloop", "stopped", "removed")
               for s in agent.serve_states(container.name, agent.serve_ports(container.name)))
