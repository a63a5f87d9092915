"""A branch's services (`[services.NAME]` in `.dual.toml`, or a compose file's): what each is made
from, checked where it is written. Each branch runs its own copy of each (`worktrees/services.py`)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from dualgit.errors import DualgitError

SERVICE_KEYS = ("image", "build", "env", "command", "entrypoint", "ports", "http", "volumes", "seed", "memory",
                "cpus", "healthcheck", "depends_on", "user")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,30}")
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


@dataclass(frozen=True)
class Health:
    """A readiness check run inside the service, as the engine's `Healthcheck` runs it."""
    test: tuple[str, ...]  # ("CMD-SHELL", "pg_isready") or ("CMD", "redis-cli", "ping")
    interval: float = 1.0  # seconds
    timeout: float = 5.0
    retries: int = 60
    start_period: float = 0.0

    def body(self) -> dict[str, Any]:
        ns = 1_000_000_000
        return {"Test": list(self.test), "Interval": int(self.interval * ns), "Timeout": int(self.timeout * ns),
                "Retries": self.retries, "StartPeriod": int(self.start_period * ns)}


@dataclass(frozen=True)
class Service:
    """One service of a branch. Paths are relative to the worktree; `at` says where it was written."""
    name: str
    image: str | None = None
    build: dict[str, Any] | None = None  # dockerfile, context, args, target
    env: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    ports: tuple[int, ...] = ()
    http: tuple[int, ...] = ()  # those of `ports` that speak HTTP: each gets a URL, as the branch's own ports do
    volumes: dict[str, str] = field(default_factory=dict)  # a volume's key -> where it is mounted inside
    binds: tuple[tuple[str, str, bool], ...] = ()  # (path in the worktree, path inside, read-only): compose's
    seed: str | None = None  # the branch whose volumes a new branch's start from
    memory: int | None = None
    cpus: float | None = None
    health: Health | None = None
    depends_on: dict[str, str] = field(default_factory=dict)  # another service -> the condition it waits for
    user: str | None = None
    restart: str = "unless-stopped"  # the engine's restart policy: compose's `restart` (default "no"), else this
    at: str = ""  # FILE:LINE:COLUMN of its table
    seed_at: str = ""


def parse(doc: dict[str, Any], file: str, text: str, taken_ports: tuple[int, ...]) -> tuple[Service, ...]:
    """`[services.NAME]` tables. `taken_ports`: the branch's own ports, which no service may declare again."""
    from dualgit.config import _at, _bad, _build, cpus, memory

    value = doc.get("services", {})
    if not isinstance(value, dict):
        raise _bad(_at(file, text, "services"), "services", "tables such as [services.db]", value)
    found: list[Service] = []
    owner = {p: "the branch's ports" for p in taken_ports}
    for name, table in value.items():
        at = _at(file, text, f"services.{name}")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise DualgitError(f"{at}: `{name}` is not a service name",
                               hint="name it with lowercase letters, digits, - and _, such as [services.db]")
        if not isinstance(table, dict):
            raise _bad(at, f"services.{name}", "a table such as [services.db] with image = ...", table)
        for key in table:
            if key not in SERVICE_KEYS:
                raise DualgitError(f"{_at(file, text, f'services.{name}.{key}')}: unknown key `{key}` "
                                   f"in service {name}", hint=f"the keys are: {', '.join(SERVICE_KEYS)}")
        if "image" not in table and "build" not in table:
            raise DualgitError(f"{at}: service {name} has no `image` or `build`",
                               hint=f'give it one, such as image = "postgres:16" under [services.{name}]')

        def where(key: str, name: str = name) -> str:
            return _at(file, text, f"services.{name}.{key}")

        image = table.get("image")
        if image is not None and (not isinstance(image, str) or not image.strip()):
            raise _bad(where("image"), f"services.{name}.image", 'an image name such as "postgres:16"', image)
        ports = _ports(table.get("ports", []), where("ports"), name)
        for port in ports:
            if port in owner:
                raise DualgitError(f"{where('ports')}: port {port} of service {name} is declared twice "
                                   f"(also by {owner[port]})",
                                   hint="each port is one server's: every service shares the branch's localhost")
            owner[port] = f"service {name}"
        seed = table.get("seed")
        if seed is not None and (not isinstance(seed, str) or not seed.strip()):
            raise _bad(where("seed"), f"services.{name}.seed", 'a branch name such as "main"', seed)
        found.append(Service(
            name=name,
            image=image.strip() if isinstance(image, str) else None,
            build=_build(table["build"], where("build")) if "build" in table else None,
            env=_env(table.get("env", {}), where("env"), name),
            command=_argv(table.get("command"), where("command"), f"services.{name}.command"),
            entrypoint=_argv(table.get("entrypoint"), where("entrypoint"), f"services.{name}.entrypoint"),
            ports=ports,
            http=http_ports(table.get("http", []), ports, where("http"), name),
            volumes=_volumes(table.get("volumes", {}), where("volumes"), name),
            seed=seed.strip() if isinstance(seed, str) else None,
            memory=memory(table["memory"], where("memory")) if "memory" in table else None,
            cpus=cpus(table["cpus"], where("cpus")) if "cpus" in table else None,
            health=_health(table.get("healthcheck"), where("healthcheck"), name),
            depends_on=_depends(table.get("depends_on", []), where("depends_on"), name),
            user=str(table["user"]) if "user" in table else None,
            at=at,
            seed_at=where("seed"),
        ))
    check_depends(found)
    return tuple(found)


def check_depends(found: list[Service]) -> None:
    names = {s.name for s in found}
    for service in found:
        for other in service.depends_on:
            if other not in names:
                raise DualgitError(f"{service.at}: service {service.name} depends on {other}, which is not a service",
                                   hint=f"the services are: {', '.join(sorted(names))}")
    order(found)


def order(found: list[Service] | tuple[Service, ...]) -> list[Service]:
    """The services in an order where each comes after what it depends on; a cycle is an error."""
    by_name = {s.name: s for s in found}
    done: list[Service] = []
    seen: set[str] = set()

    def visit(service: Service, path: tuple[str, ...]) -> None:
        if service.name in seen:
            return
        if service.name in path:
            raise DualgitError(f"{service.at}: services depend on each other in a circle: "
                               f"{' -> '.join([*path, service.name])}", hint="drop one of those depends_on")
        for other in service.depends_on:
            if other in by_name:
                visit(by_name[other], (*path, service.name))
        seen.add(service.name)
        done.append(service)

    for service in found:
        visit(service, ())
    return done


def _ports(value: Any, at: str, name: str) -> tuple[int, ...]:
    from dualgit.config import _ports as ports

    found = ports(value, at, f"services.{name}.ports")
    if len(found) != len(value):
        raise DualgitError(f"{at}: a port of service {name} is declared twice", hint="list each port once")
    return found


def http_ports(value: Any, ports: tuple[int, ...], at: str, name: str) -> tuple[int, ...]:
    """`http`: the service's ports that speak HTTP (a web UI, a mail catcher's), each one of `ports`."""
    if not isinstance(value, list) or any(isinstance(p, bool) or p not in ports for p in value):
        raise DualgitError(f"{at}: `http` of service {name} must list some of its ports {list(ports)}, not {value!r}",
                           hint="add the port to its ports too, such as ports = [8025] and http = [8025]")
    return tuple(dict.fromkeys(value))


def _env(value: Any, at: str, name: str) -> dict[str, str]:
    from dualgit.config import _bad

    if not isinstance(value, dict) or any(isinstance(v, (dict, list)) for v in value.values()):
        raise _bad(at, f"services.{name}.env", 'a table such as { POSTGRES_PASSWORD = "dev" }', value)
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


def _argv(value: Any, at: str, key: str) -> tuple[str, ...] | None:
    """A command as compose reads one: a string split as a shell would (no shell runs it), or a list."""
    import shlex

    from dualgit.config import _bad

    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        try:
            return tuple(shlex.split(value))
        except ValueError as exc:
            raise _bad(at, key, f"a command a shell can split ({exc})", value) from None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _bad(at, key, 'a command such as "postgres -c fsync=off", or a list of its words', value)


def inside_path(path: Any) -> str | None:
    """`path` as an absolute, normal path inside the container; None when it is not one below its root."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        return None
    if any(part == ".." for part in path.split("/")):
        return None
    normal = posixpath.normpath(path)
    return normal if normal != "/" else None


def _volumes(value: Any, at: str, name: str) -> dict[str, str]:
    from dualgit.config import _bad

    if not isinstance(value, dict):
        raise _bad(at, f"services.{name}.volumes", 'a table of names to paths inside, such as '
                   '{ data = "/var/lib/postgresql/data" }', value)
    found = {}
    for key, path in value.items():
        target = inside_path(path)
        if target is None:
            raise DualgitError(f"{at}: volume {key} of service {name} is mounted at {path!r}, "
                               "which is not a folder below the container's root",
                               hint='give an absolute path inside it, such as "/var/lib/postgresql/data"')
        if not NAME.fullmatch(str(key)):
            raise DualgitError(f"{at}: `{key}` is not a volume name", hint="use lowercase letters, digits, - and _")
        found[str(key)] = target
    return found


DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")


def seconds(value: Any, at: str, key: str) -> float:
    """Compose's durations ("1s", "500ms", "1m30s") or a number of seconds."""
    from dualgit.config import _bad

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|s|m|h)", value.strip())
        if parts and "".join(a + b for a, b in parts) == value.strip():
            scale = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
            return sum(float(n) * scale[unit] for n, unit in parts)
    raise _bad(at, key, 'a duration such as "1s", "500ms" or "1m30s"', value)


def _health(value: Any, at: str, name: str) -> Health | None:
    """`healthcheck`: a shell command, or a table of test, interval, timeout, retries, start_period."""
    from dualgit.config import _bad

    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return Health(("CMD-SHELL", value))
    if isinstance(value, dict) and "test" in value:
        test = value["test"]
        if isinstance(test, str):
            found: tuple[str, ...] = ("CMD-SHELL", test)
        elif isinstance(test, list) and test and all(isinstance(t, str) for t in test):
            found = tuple(test) if test[0] in ("CMD", "CMD-SHELL", "NONE") else ("CMD", *test)
        else:
            raise _bad(at, f"services.{name}.healthcheck.test", "a command", test)
        key = f"services.{name}.healthcheck"
        retries = value.get("retries", 60)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise _bad(at, f"{key}.retries", "a whole number above 0", retries)
        return Health(found, seconds(value.get("interval", 1), at, f"{key}.interval"),
                      seconds(value.get("timeout", 5), at, f"{key}.timeout"), retries,
                      seconds(value.get("start_period", 0), at, f"{key}.start_period"))
    raise _bad(at, f"services.{name}.healthcheck", 'a command such as "pg_isready -U postgres", or a table '
               "with test, interval, timeout, retries", value)


def _depends(value: Any, at: str, name: str) -> dict[str, str]:
    """`depends_on`: a list of services (started), or a table of services to their condition."""
    from dualgit.config import _bad

    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return dict.fromkeys(value, "service_started")
    if isinstance(value, dict):
        found = {}
        for other, wanted in value.items():
            condition = wanted.get("condition", "service_started") if isinstance(wanted, dict) else wanted
            if condition not in CONDITIONS:
                raise _bad(at, f"services.{name}.depends_on.{other}", " or ".join(CONDITIONS), condition)
            found[str(other)] = str(condition)
        return found
    raise _bad(at, f"services.{name}.depends_on", 'a list of services such as ["db"], or a table of services '
               'to conditions such as { db = "service_healthy" }', value)
