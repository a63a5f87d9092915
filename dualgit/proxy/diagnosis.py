"""Why a branch does not answer, for its 503 and 502 pages: what is under way (setup, `serve`
starting), or what listens inside its container (`inside.py`), or its memory cap. Read only when a
request fails, and at most once a second per container and port."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dualgit.proxy import hosts, inside
from dualgit.proxy.say import log
from dualgit.worktrees import agent
from dualgit.worktrees.inventory import killed_by_memory_cap

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine

INSIDE_FOR = 1.0  # seconds a look at a container's listening sockets serves 502 pages


class Diagnosis:
    def __init__(self, api: Engine) -> None:
        self.api = api
        # What listens inside a container on a port: one look per container and port every
        # INSIDE_FOR seconds, shared by the requests that fail meanwhile (a page reloading).
        self.looks: dict[tuple[str, int], tuple[float, asyncio.Future[tuple[str, str] | None]]] = {}

    def under_way(self, backend: hosts.Backend, port: int) -> str:
        """What keeps `backend` from answering for now ("": nothing), for a 503: its setup, naming
        the step, or its `serve` on `port` starting."""
        from dualgit.worktrees import setup_state

        name = backend.container.name
        state = setup_state.read(name)
        if state.status == "running" and state.container_id in ("", backend.container.id):
            return f"setup is running (step: {state.step})" if state.step else "setup is running"
        for serve in agent.serve_states(name, [p for p in agent.serve_ports(name) if p == port]):
            if serve.state in ("waiting", "starting") or (serve.state == "running" and not serve.listening):
                return f"its dev server (`serve`) is starting on :{port}"
            if serve.state == "exited":
                return f"its dev server (`serve`) {serve.describe()}"
        return ""

    def why_nothing_answers(self, backend: hosts.Backend, port: int) -> asyncio.Future[tuple[str, str] | None]:
        """Why `backend`'s container does not answer on `port`, and what to do, for a 502
        (`inside.explain`), or None when its sockets could not be read. Never fails: a page waits."""
        loop = asyncio.get_running_loop()
        key, now = (backend.container.id, port), loop.time()
        seen = self.looks.get(key)
        if seen is not None and now - seen[0] < INSIDE_FOR:
            return seen[1]
        if len(self.looks) > 1024:
            self.looks.clear()
        answer = loop.create_future()
        self.looks[key] = (now, answer)
        loop.create_task(self._look_inside(backend, port, answer))
        return answer

    async def _look_inside(self, backend: hosts.Backend, port: int,
                           answer: asyncio.Future[tuple[str, str] | None]) -> None:
        container = backend.container.id
        try:
            loop = asyncio.get_running_loop()
            if not backend.running:  # stopped: by the user, or by its memory cap (the engine knows)
                killed = await loop.run_in_executor(None, killed_by_memory_cap, self.api, container)
                answer.set_result(("its memory cap killed it (out of memory)",
                                   "raise it (`git dual config set memory 2g`), then `git dual up`") if killed else None)
                return
            text = await loop.run_in_executor(None, inside.read_sockets, self.api, container)
            answer.set_result(inside.explain(inside.listening(text, port), port))
        except Exception as exc:  # noqa: BLE001 - a page waits for this: it gets the general words
            log(f"could not look inside {container[:12]} for port {port}: {exc}")
            answer.set_result(None)
