"""Idle branches sleep, and wake on their first request: the proxy's idle clocks and the caps.

Once a second the proxy looks at every running branch. Activity is bytes moving on a proxied
connection (its `hosts.Mark`), a command running through `git dual exec`, the shims or `git dual
shell` (`idle.Use`), setup, and a file changed in the worktree outside what dev servers write.
The clocks live in the host's state files (`worktrees/idle.py`), so a restarted proxy counts from
the last activity. A branch idle for its `idle_after` is stopped, never removed, and marked
asleep; its next request (not a hot-reload probe: `quiet`), raw TCP connection, exec or `up`
starts it again, `serve` and all. Past the user's `max_running`, the least recently used idle
branch sleeps before another wakes.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Protocol

from dualgit.background import user_config_file
from dualgit.config import Config, Limits, UserConfig, limits, load, load_user
from dualgit.errors import DualgitError
from dualgit.proxy.say import log
from dualgit.worktrees import agent, idle, setup_state
from dualgit.worktrees.idle import ago
from dualgit.worktrees.inventory import service_ports, start_services, stop_services

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine
    from dualgit.proxy.hosts import Backend, Mark
    from dualgit.proxy.http import Head
    from dualgit.worktrees.inventory import Container

SWEEP_EVERY = 1.0  # seconds between looks at the idle clocks
HOLD_FOR = 30.0  # seconds a request is held while its branch wakes, before 503 and Retry-After
WAKE_LIMIT = 60.0  # seconds a wake waits for `serve` to listen
TCP_WAIT = 10.0  # seconds a woken branch's raw TCP port is waited for (a database starting), when not `serve`'s
STOP_TIMEOUT = 5  # seconds the engine gives a sleeping container's processes to end
# For max_running: a branch unused this long is idle enough to be put to sleep for another.
CAP_IDLE = float(os.environ.get("DUALGIT_CAP_IDLE", "60"))
# Hot-reload channels and their reconnect probes: they come by themselves from an open tab (a hidden
# one too), so they neither keep a branch awake nor wake it.
QUIET_PROTOCOLS = ("vite-hmr", "vite-ping")
QUIET_PATHS = ("/_next/webpack-hmr", "/__webpack_hmr", "/_next/hmr")


def quiet(head: Head) -> bool:
    """Whether a request is a dev server's own hot-reload traffic, not a person's."""
    if "text/x-vite-ping" in (head.get("accept") or ""):
        return True
    protocols = head.get("sec-websocket-protocol")
    if protocols and any(p in protocols for p in QUIET_PROTOCOLS):
        return True
    return head.start[1].startswith(QUIET_PATHS)


def navigation(head: Head) -> bool:
    """A browser's top-level page load: it gets the waking page at once, rather than being held."""
    mode = head.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    return "text/html" in (head.get("accept") or "")


class Host(Protocol):
    """What the sleeper asks of the proxy (`server.Proxy`): the engine, the containers and their
    activity marks as the host table knows them, a fresh list, and the status file written anew."""

    api: Engine

    @property
    def containers(self) -> list[Container]: ...

    @property
    def marks(self) -> dict[str, Mark]: ...

    async def refresh(self) -> None: ...

    def write_status(self) -> None: ...


class Sleeper:
    def __init__(self, proxy: Host) -> None:
        self.proxy = proxy
        self.last: dict[str, float] = {}  # container name -> last activity (also in its `.active` file)
        self.waking: dict[str, asyncio.Future[bool]] = {}
        self.going: set[str] = set()  # being put to sleep now
        self.configs: dict[str, tuple[tuple[int, int], Config | None]] = {}  # by worktree, with its stat
        self.user: tuple[tuple[int, int], UserConfig] = ((-1, -1), UserConfig())
        self.said_over = ""  # the cap-exceeded line last logged
        self.probed: set[str] = set()  # asleep branches whose hot-reload probe was logged (once a sleep)

    # what the proxy asks

    def asleep(self, backend: Backend) -> bool:
        """Whether requests to `backend` should wake it: it sleeps, or is being put to sleep."""
        name = backend.container.name
        return name in self.going or (not backend.running and idle.asleep_since(name) is not None)

    def sleeping(self, backends: list[Backend] | tuple[Backend, ...]) -> frozenset[str]:
        """The container names of those of `backends` that sleep, for the proxy's pages."""
        return frozenset(b.container.name for b in backends if not b.running and self.asleep(b))

    def probe_refused(self, backend: Backend) -> None:
        """Said once a sleep: a tab's hot-reload probe came, and was not let wake the branch."""
        name = backend.container.name
        if name not in self.probed:
            self.probed.add(name)
            log(f"{name} ({backend.branch_name}): asleep; a hot-reload probe (an open tab's) does not wake it, "
                "a page load does")

    def wake(self, backend: Backend) -> asyncio.Future[bool]:
        """Start the branch (once, however many ask meanwhile); True once its `serve` listens."""
        name = backend.container.name
        found = self.waking.get(name)
        if found is None:
            found = self.waking[name] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().create_task(self._wake(backend.container, backend.branch_name, found))
        return found

    # the clocks

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - the proxy must go on serving; said in its log
                log(f"idle clocks: {type(exc).__name__}: {exc}")

    async def sweep(self) -> None:
        now = time.time()
        user = self._user()
        running = [c for c in self.proxy.containers if c.state == "running"]
        marks = self.proxy.marks
        due: list[tuple[Container, Limits]] = []
        for c in running:
            mark = marks.get(c.name)
            if mark is not None and mark.hot:
                mark.hot = False
                self.last[c.name] = now
                idle.touch(c.name, now)
            if c.name in self.going or c.name in self.waking:
                continue
            caps = self._limits(c, user)
            if caps is None or caps.idle_after == 0:
                continue
            if now - self._last(c.name, now) >= caps.idle_after:
                due.append((c, caps))
        loop = asyncio.get_running_loop()
        for c, caps in due:
            self.going.add(c.name)
            loop.create_task(self._sleep(c, f"idle for {ago(caps.idle_after)}"))
        awake = [c for c in running if c.name not in self.going]
        if user.max_running and len(awake) > user.max_running:
            self._over_cap(awake, user.max_running, now)
        elif self.said_over:
            self.said_over = ""
            log(f"max_running: back within {user.max_running or 'no cap'}")
            self.proxy.write_status()

    def _last(self, name: str, now: float) -> float:
        """The branch's last activity: the later of the proxy's and the file's (exec's); a branch
        seen for the first time starts its clock now."""
        found = idle.last_active(name)
        if found is None:
            idle.touch(name, now)
            found = now
        last = max(found, self.last.get(name, 0.0))
        self.last[name] = last
        return last

    def _over_cap(self, awake: list[Container], cap: int, now: float) -> None:
        """Put the least recently used idle branches to sleep until `cap` run; say so when too few are idle."""
        over = len(awake) - cap
        idle_ones = sorted((self._last(c.name, now), c.name, c) for c in awake
                           if c.name not in self.waking and now - self._last(c.name, now) >= CAP_IDLE
                           and not self._never(c) and not idle.in_use(c.name)
                           and setup_state.read(c.name).status != "running")
        loop = asyncio.get_running_loop()
        for _, name, c in idle_ones[:over]:
            self.going.add(name)
            loop.create_task(self._sleep(c, f"max_running = {cap}, and it was used least recently"))
        if len(idle_ones) < over:
            said = (f"max_running = {cap} exceeded: {len(awake)} branches run, and "
                    f"{'none' if not idle_ones else len(idle_ones)} of them idle")
            if said != self.said_over:
                self.said_over = said
                log(said)
                self.proxy.write_status()

    def _never(self, c: Container) -> bool:
        """`idle_after = 0` set by the user or the branch: it never sleeps, not even for the cap."""
        config = self._config(c.worktree)
        user = self.user[1]
        return (config is not None and config.idle_after == 0) or (
            (config is None or config.idle_after is None) and user.idle_after == 0)

    async def _sleep(self, c: Container, why: str) -> None:
        try:
            if await asyncio.get_running_loop().run_in_executor(None, self._sleep_now, c, why):
                await self.proxy.refresh()  # before it counts as asleep rather than going: no request sees it running
        finally:
            self.going.discard(c.name)

    def _sleep_now(self, c: Container, why: str) -> bool:
        """In a thread: stop the container unless something uses it. Holding its lock, no exec starts."""
        lock = idle.claim(c.name)
        if lock is None:
            return False  # a command runs in it: its end is activity
        try:
            if setup_state.read(c.name).status == "running":
                return False
            since = self.last.get(c.name, time.time())
            changed = idle.changed_since(c.worktree, since)
            if changed is not None:
                self.last[c.name] = max(self.last.get(c.name, 0), changed)
                idle.touch(c.name, self.last[c.name])
                return False
            mark = self.proxy.marks.get(c.name)
            if mark is not None and mark.hot:
                return False
            idle.fell_asleep(c.name)
            try:
                self.proxy.api.stop(c.id, STOP_TIMEOUT)
                if c.services:  # they sleep with it, after it: they live in its namespace
                    stop_services(self.proxy.api, c.repo, c.worktree, STOP_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - an ApiError or an unreachable engine: said, and awake
                idle.woke(c.name)
                log(f"{c.name}: could not put it to sleep: {exc}")
                return False
            log(f"{c.name}: asleep ({why}); its next request wakes it")
            return True
        finally:
            os.close(lock)

    # waking

    async def _wake(self, c: Container, branch: str, answer: asyncio.Future[bool]) -> None:
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        try:
            while c.name in self.going:  # being put to sleep just now: let that finish
                await asyncio.sleep(0.05)
            await loop.run_in_executor(None, self._make_room, c)
            await loop.run_in_executor(None, self._start, c)
            self.last[c.name] = time.time()
            idle.touch(c.name)
            await self.proxy.refresh()
            ports, left = [*agent.serve_ports(c.name), *service_ports(c)], WAKE_LIMIT - (time.monotonic() - began)
            if c.synced:  # its agent's word comes back with the next sync, a second later: asked inside instead
                await until_listening_inside(self.proxy.api, c.name, ports, left)
            else:
                await until_listening(c.name, ports, left)
            log(f"{c.name} ({branch}): awake in {time.monotonic() - began:.1f}s")
            answer.set_result(True)
        except Exception as exc:  # noqa: BLE001 - held requests get a 503 that says so
            log(f"{c.name} ({branch}): could not wake it: {exc}")
            answer.set_result(False)
        finally:
            self.waking.pop(c.name, None)

    def _start(self, c: Container) -> None:
        from dualgit.worktrees.containers import apply_caps

        self.probed.discard(c.name)
        caps = self._limits(c, self._user())
        if caps is not None:
            apply_caps(self.proxy.api, c, caps)  # edited while it slept: it wakes with them
        if not c.synced:  # what listened before it slept: the wake waits for the agent's new word
            agent.write(c.name, "listen", None)
        self.proxy.api.start(c.id)
        if c.services:  # after it: they join its new namespace
            start_services(self.proxy.api, c.repo, c.worktree)
        idle.woke(c.name)

    def _make_room(self, c: Container) -> None:
        """Past max_running, the least recently used idle branch sleeps before this one starts."""
        cap = self._user().max_running
        awake = [x for x in self.proxy.containers if x.state == "running" and x.name not in self.going]
        if not cap or len(awake) < cap:
            return
        now = time.time()
        for _, name, victim in sorted((self._last(x.name, now), x.name, x) for x in awake):
            if name == c.name or name in self.waking or now - self._last(name, now) < CAP_IDLE or self._never(victim):
                continue
            self.going.add(name)
            try:
                if self._sleep_now(victim, f"max_running = {cap}: {c.name} wakes"):
                    return
            finally:
                self.going.discard(name)
        log(f"max_running = {cap} exceeded: {c.name} wakes, and no other branch is idle")

    # configuration, read again when its file changes

    def _user(self) -> UserConfig:
        stamp = _stamp(user_config_file())
        if stamp != self.user[0]:
            try:
                self.user = (stamp, load_user())
            except DualgitError as exc:
                log(f"{exc.message}: the idle policy keeps its defaults until it is fixed")
                self.user = (stamp, UserConfig())
        return self.user[1]

    def _config(self, worktree: str) -> Config | None:
        stamp = _stamp(os.path.join(worktree, ".dual.toml"))
        seen = self.configs.get(worktree)
        if seen is None or seen[0] != stamp:
            try:
                config: Config | None = load(worktree)
            except DualgitError as exc:
                log(f"{exc.message}: its branch does not sleep until it is fixed")
                config = None
            seen = self.configs[worktree] = (stamp, config)
        return seen[1]

    def _limits(self, c: Container, user: UserConfig) -> Limits | None:
        config = self._config(c.worktree)
        return None if config is None else limits(config, user)


async def until_listening(name: str, ports: list[int], seconds: float) -> None:
    """Until each of `ports` listens inside (the agent's `listen`), a `serve` there stops for good, or
    `seconds` pass; a request then gets its page, which says why."""
    deadline = time.monotonic() + seconds
    while ports and time.monotonic() < deadline:
        listening = agent.listening(name)
        if all(p in listening for p in ports):
            return
        if any(s.state in ("crashloop", "removed") for s in agent.serve_states(name, ports)):
            return
        await asyncio.sleep(0.05)


async def until_listening_inside(api: Engine, name: str, ports: list[int], seconds: float) -> None:
    """`until_listening` for a container whose state folder comes by sync: its sockets read inside
    (`inside.read_sockets`, through the agent's busybox), five times a second."""
    from dualgit.proxy.inside import listening, read_sockets

    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + seconds
    while ports and time.monotonic() < deadline:
        text = await loop.run_in_executor(None, read_sockets, api, name, 3.0, [agent.BUSYBOX, "cat"])
        if all((found := listening(text, p)) is not None and (found.wildcard or found.loopback) for p in ports):
            return
        await asyncio.sleep(0.2)


def _stamp(file: str) -> tuple[int, int]:
    try:
        found = os.stat(file)
    except OSError:
        return (0, 0)
    return (found.st_mtime_ns, found.st_size)
