"""Several engines as one (`Several`), for the commands and the proxy that see every branch when
branches run on different engines: a listing is the union of each engine's, and a call about one
container, volume, network or exec goes to the engine that holds it. Which engine makes a new
object is said by its labels (`route`: the worktree it belongs to), so the code above does not
change. An engine that does not answer is left out of a listing and named in `missing`."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from dualgit.engine.api import ApiError
from dualgit.engine.find import DEFAULT
from dualgit.errors import DualgitError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.engine.interface import Engine

RETRY_AFTER = 10.0  # seconds another engine that did not answer a listing is left out of the next ones


class Several:
    def __init__(self, names: Callable[[], set[str]], make: Callable[[str], Engine],
                 route: Callable[[dict[str, str]], str]) -> None:
        """`names`: the engines in use now (DEFAULT among them), asked again at each listing so that
        one named since joins; `make`: a client for a name; `route`: the engine's name for an
        object with these labels."""
        self._names, self._make, self._route = names, make, route
        self.members: dict[str, Engine] = {}
        self.missing: dict[str, str] = {}  # engine's name -> what it said, at the last listing
        self._held: dict[str, str] = {}  # container, volume or exec id or name -> engine's name
        self._lock = threading.Lock()
        self._events: queue.Queue[dict[str, Any] | DualgitError] = queue.Queue()
        self._following: set[str] = set()
        self._resting: dict[str, tuple[float, str]] = {}  # an engine that failed -> (asked again after, what it said)
        self.member(DEFAULT)
        self.endpoint = self.members[DEFAULT].endpoint

    def member(self, name: str) -> Engine:
        with self._lock:
            if name not in self.members:
                self.members[name] = self._make(name)
            return self.members[name]

    def _all(self, missing: dict[str, str] | None = None) -> list[tuple[str, Engine]]:
        """Every engine in use now; one that cannot be named (a context since removed) is told to
        `missing`."""
        for name in sorted(self._names() | {DEFAULT}):
            try:
                self.member(name)
            except DualgitError as exc:
                if missing is not None:
                    missing[name] = exc.message
        return list(self.members.items())

    def holding(self, ident: str, knows: Callable[[Engine, str], object] | None = None) -> Engine:
        """The engine that holds the container (or, with its `knows`, volume or network) `ident`: the
        one it was listed or made on, else the first that knows it, else the default one."""
        name = self._held.get(ident)
        if name is not None:
            return self.members[name]
        for name, engine in self._all():
            if time.monotonic() < self._resting.get(name, (0.0, ""))[0]:
                continue
            try:
                if not (knows or _has_container)(engine, ident):
                    continue
            except (ApiError, DualgitError):
                continue
            self._held[ident] = name
            return engine
        return self.members[DEFAULT]

    def _listed(self, call: Callable[[Engine], list[dict[str, Any]]], key: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        missing: dict[str, str] = {}
        members = self._all(missing)
        now = time.monotonic()
        for name, engine in members:
            until, said = self._resting.get(name, (0.0, ""))
            if now < until:  # it failed a moment ago: a long-lived caller (the proxy) does not wait on it each time
                missing[name] = said
                continue
            try:
                items = call(engine)
            except DualgitError as exc:
                missing[name] = exc.message
                if name != DEFAULT:  # this machine's fails fast, and is asked again at once
                    self._resting[name] = (time.monotonic() + RETRY_AFTER, exc.message)
                continue
            self._resting.pop(name, None)
            for item in items:
                self._held[item[key]] = name
                if key == "Id" and item.get("Names"):
                    self._held[item["Names"][0].lstrip("/")] = name
            found += items
        self.missing = missing
        if members and all(name in missing for name, _engine in members):
            raise DualgitError(missing[DEFAULT] if DEFAULT in missing else next(iter(missing.values())))
        return found

    def version(self) -> dict[str, Any]:
        return self.members[DEFAULT].version()

    def info(self) -> dict[str, Any]:
        return self.members[DEFAULT].info()

    def containers(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return self._listed(lambda engine: engine.containers(filters), "Id")

    def volumes(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return self._listed(lambda engine: engine.volumes(filters), "Name")

    def inspect_container(self, name: str) -> dict[str, Any]:
        return self.holding(name).inspect_container(name)

    def create_container(self, body: dict[str, Any], name: str) -> str:
        owner = self._route(body.get("Labels") or {})
        made = self.member(owner).create_container(body, name)
        self._held[made] = self._held[name] = owner
        return made

    def start(self, container: str) -> None:
        self.holding(container).start(container)

    def pause(self, container: str) -> None:
        self.holding(container).pause(container)

    def unpause(self, container: str) -> None:
        self.holding(container).unpause(container)

    def update_container(self, container: str, resources: dict[str, Any]) -> None:
        self.holding(container).update_container(container, resources)

    def stop(self, container: str, timeout: int) -> None:
        self.holding(container).stop(container, timeout)

    def wait(self, container: str) -> int:
        return self.holding(container).wait(container)

    def remove_container(self, container: str) -> bool:
        return self.holding(container).remove_container(container)

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        owner = self._route(labels)
        self.member(owner).create_volume(name, labels)
        self._held[name] = owner

    def remove_volume(self, name: str) -> bool:
        return self.holding(name, _has_volume).remove_volume(name)

    def inspect_image(self, name: str) -> dict[str, Any]:
        return self.members[DEFAULT].inspect_image(name)

    def inspect_network(self, name: str) -> dict[str, Any]:
        return self.holding(name, _has_network).inspect_network(name)

    def create_network(self, name: str, labels: dict[str, str], options: dict[str, str]) -> None:
        owner = self._route(labels)
        self.member(owner).create_network(name, labels, options)
        self._held[name] = owner

    def remove_network(self, name: str) -> bool:
        return self.holding(name, _has_network).remove_network(name)

    def run(self, container: str, cmd: list[str], user: str | None = None, env: list[str] | None = None,
            timeout: float | None = 30.0, limit: int = 1 << 20) -> tuple[int, bytes]:
        return self.holding(container).run(container, cmd, user, env, timeout, limit)

    def attach(self, container: str, cmd: list[str], user: str | None = None, env: list[str] | None = None,
               timeout: float | None = 30.0) -> tuple[Any, bytes, str]:
        engine = self.holding(container)
        sock, rest, exec_id = engine.attach(container, cmd, user, env, timeout)
        self._held[exec_id] = self._held.get(container, DEFAULT)
        return sock, rest, exec_id

    def put_archive(self, container: str, folder: str, archive: bytes) -> None:
        self.holding(container).put_archive(container, folder, archive)

    def exit_code(self, exec_id: str) -> int:
        return self.members[self._held.get(exec_id, DEFAULT)].exit_code(exec_id)

    def events(self, filters: dict[str, list[str]]) -> Iterator[dict[str, Any]]:
        """Every engine's events, as they come, from a thread per engine that lives as long as this
        object (an engine named since joins within a second). An engine that stops answering is
        raised here once per failure, as one engine's stream would end, and its thread tries again."""
        while True:
            for name, engine in self._all():
                if name not in self._following:
                    self._following.add(name)
                    threading.Thread(target=self._follow, args=(name, engine, filters), daemon=True).start()
            try:
                item = self._events.get(timeout=1.0)
            except queue.Empty:
                continue
            if isinstance(item, DualgitError):
                raise item
            yield item

    def _follow(self, name: str, engine: Engine, filters: dict[str, list[str]]) -> None:
        delay = 0.5
        while True:
            try:
                for event in engine.events(filters):
                    delay = 0.5
                    self._events.put(event)
            except Exception as exc:  # noqa: BLE001  # whatever its client raised: told, and tried again
                said = exc.message if isinstance(exc, DualgitError) else str(exc) or type(exc).__name__
                self._events.put(DualgitError(told(name, said)))
            time.sleep(delay)
            delay = min(delay * 2, 10)


def told(name: str, said: str) -> str:
    """What an engine's failure reads as: the default engine's as one engine's always did, another's
    with its name (one wording wherever it is said, so that a log says it once)."""
    return said if name == DEFAULT else f"the engine {name}: {said}"


def _has_container(engine: Engine, ident: str) -> object:
    return engine.inspect_container(ident)


def _has_volume(engine: Engine, name: str) -> object:
    return any(v.get("Name") == name for v in engine.volumes({"name": [name]}))


def _has_network(engine: Engine, name: str) -> object:
    return engine.inspect_network(name)


def holding(api: Engine, ident: str) -> Engine:
    """The one engine of `api` that holds `ident` (`api` itself when it is one engine)."""
    return api.holding(ident) if isinstance(api, Several) else api
