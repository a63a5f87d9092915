"""A branch's services: one container each, in the branch container's network namespace, as a pod's.

Inside the branch a service answers at `localhost:PORT` and at its name (the branch's `/etc/hosts`,
which containers that join its namespace share), and no host port is taken: its ports are the
branch container's, published on loopback as `tcp_ports` are (its `http` ones as `ports` are), so
`urls` and the proxy list them. The branch container holds the namespace, so its services are made
after it, and started after it, stopped after it and removed before it (`inventory`'s
`start_services`, `stop_services`, `remove`); one made anew takes its services with it, their
volumes kept. A service's container carries `dualgit.service` and
`dualgit.service_of` (not `dualgit.worktree`, which names the branch's own container); its volumes
carry the worktree's labels, so they go with the worktree and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dualgit.background import state_dir
from dualgit.config.services import CONDITIONS, Service, order
from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError
from dualgit.naming import volume_name
from dualgit.worktrees import labels
from dualgit.worktrees.inventory import container_for, listed, logs_tail, remove_service

if TYPE_CHECKING:
    from dualgit.config import Config
    from dualgit.engine.interface import Engine
    from dualgit.git.locate import Location
    from dualgit.hookspecs import Context, Environment
    from dualgit.worktrees.images import Build

READY_SECONDS = 120.0  # how long a service may take to be ready before the branch's setup fails at it


@dataclass
class ServicePlan:
    """What one service's container is made from; `body` lacks the namespace it joins (`body_for`)."""
    service: Service
    name: str  # its container's name
    image: str
    image_id: str
    volumes: list[tuple[str, str, str]]  # (volume name, key, path inside)
    body: dict[str, Any] = field(default_factory=dict)
    build: Build | None = None


def plan_services(loc: Location, branch: str, wanted: tuple[Service, ...], api: Engine, pull: bool,
                  repo_name: str) -> list[ServicePlan]:
    """The plans of a branch's services, in the order they start (each after what it depends on)."""
    from dualgit.worktrees.images import Build, build_tag, image_id

    found = []
    for service in order(wanted):
        build = None
        if service.build is not None:
            given = service.build
            build = Build(given["dockerfile"], given["context"], dict(given.get("args") or {}),
                          given.get("target"), service.at.split(":")[0])
            image = build_tag(loc.worktree, repo_name, build)
        else:
            image = str(service.image)
        made_from = image_id(api, image, pull, build, loc.worktree)
        name = container_for(branch, service.name)
        volumes = [(volume_name(name, key), key, target) for key, target in sorted(service.volumes.items())]
        found.append(ServicePlan(service, name, image, made_from, volumes, _body(loc, service, image, volumes), build))
    return found


def _body(loc: Location, service: Service, image: str, volumes: list[tuple[str, str, str]]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Image": image,
        "Env": [f"{k}={v}" for k, v in sorted(service.env.items())],
        "HostConfig": {
            "Mounts": [{"Type": "volume", "Source": volume, "Target": target} for volume, _key, target in volumes]
                      + [{"Type": "bind", "Source": f"{loc.worktree}/{host}".rstrip("/"), "Target": inside,
                          "ReadOnly": read_only} for host, inside, read_only in service.binds],
            "RestartPolicy": {"Name": service.restart},
        },
        "Labels": {labels.REPO: loc.common_dir, labels.SERVICE: service.name, labels.SERVICE_OF: loc.worktree},
    }
    if service.command is not None:
        body["Cmd"] = list(service.command)
    if service.entrypoint is not None:
        body["Entrypoint"] = list(service.entrypoint)
    if service.user is not None:
        body["User"] = service.user
    if service.health is not None:
        body["Healthcheck"] = service.health.body()
    if service.memory is not None:
        body["HostConfig"]["Memory"] = service.memory
        body["HostConfig"]["MemorySwap"] = 2 * service.memory
    if service.cpus is not None:
        body["HostConfig"]["NanoCpus"] = int(service.cpus * 1e9)
    return body


def body_for(wanted: ServicePlan, branch_id: str, copied: bytes | None = None, loc: Location | None = None,
             ) -> dict[str, Any]:
    """The create body, in the namespace of the branch container `branch_id`: a branch container
    made anew means its services are too (the spec says so). With `copied` (`copied_binds`), on an
    engine whose worktrees are synced: the worktree's root mounts its synced volume, and the other
    binds are that archive, whose digest joins the spec (an edit to them makes the service anew)."""
    body: dict[str, Any] = json.loads(json.dumps(wanted.body))
    body["HostConfig"]["NetworkMode"] = f"container:{branch_id}"
    if copied is not None and loc is not None:
        from dualgit.naming import container_name
        from dualgit.worktrees.sync import volumes

        synced = volumes(container_name(loc.common_dir, loc.worktree))["worktree"]
        body["HostConfig"]["Mounts"] = [m for m in body["HostConfig"]["Mounts"] if m["Type"] != "bind"] + [
            {"Type": "volume", "Source": synced, "Target": inside, "ReadOnly": read_only}
            for host, inside, read_only in wanted.service.binds if not host]
        body["Labels"][labels.SERVICE_FILES] = hashlib.sha256(copied).hexdigest()[:16]
    spec = hashlib.sha256(json.dumps([body, wanted.image_id], sort_keys=True).encode()).hexdigest()[:16]
    body["Labels"].update({labels.SPEC: spec, labels.STATE: state_dir()})
    return body


def ensure_volumes(api: Engine, loc: Location, wanted: ServicePlan) -> list[tuple[str, str, str]]:
    """Make the service's volumes that are missing, labelled; the ones made now (for a seed to fill)."""
    have = {v["Name"] for v in api.volumes({"label": [f"{labels.REPO}={loc.common_dir}",
                                                        f"{labels.SERVICE}={wanted.service.name}"]})}
    made = []
    for volume, key, target in wanted.volumes:
        if volume in have:
            continue
        api.create_volume(volume, {labels.REPO: loc.common_dir, labels.WORKTREE: loc.worktree,
                                   labels.SERVICE: wanted.service.name, labels.VOLUME: key})
        made.append((volume, key, target))
    return made


def services_for(ctx: Context, config: Config, environments: list[Environment]) -> tuple[Service, ...]:
    """The branch's services: `.dual.toml`'s `[services.NAME]`, and those of the compose files it opts
    in (`compose`) or devcontainer.json names (`dockerComposeFile`, less its own `service`, and only
    `runServices` when given). A name given twice is an error."""
    found = list(config.services)
    names = {s.name for s in found}
    owner = {p: "the branch's ports" for p in (*config.ports, *config.tcp_ports)}
    owner.update({p: f"service {s.name}" for s in found for p in s.ports})
    for extra in compose_services(ctx, config, environments)[0]:
        if extra.name in names:
            raise DualgitError(f"{extra.at}: service {extra.name} is also declared in .dual.toml",
                               hint="declare each service once")
        for port in extra.ports:
            if port in owner:
                raise DualgitError(f"{extra.at}: port {port} of service {extra.name} is declared twice (also by "
                                   f"{owner[port]})", hint="each port is one server's: every service shares "
                                   "the branch's localhost")
            owner[port] = f"service {extra.name}"
        names.add(extra.name)
        found.append(extra)
    return tuple(found)


def compose_services(ctx: Context, config: Config, environments: list[Environment],
                     ) -> tuple[list[Service], Service | None, list[str]]:
    """(the compose files' services that run beside the branch, the one that is the branch's own
    container when devcontainer.json names one, the lines that say what is not honoured).
    `environments`: the plugins' (`plan.environments_for`)."""
    from dualgit.config import compose

    profiles = [str(p) for p in config.data.get("compose_profiles") or []]
    found: list[Service] = []
    notes: list[str] = []
    own = None
    if config.compose:
        services, notes, _ = compose.load(ctx.worktree, list(config.compose), profiles)
        found += services
    described = next((e for e in environments if e.compose), None)
    if described is not None and described.compose is not None:
        given = described.compose
        services, more, _ = compose.load(ctx.worktree, list(given["files"]), profiles, described.source)
        notes += more
        main = given.get("service")
        own = next((s for s in services if s.name == main), None)
        if own is None:
            raise DualgitError(f"{described.source}: `service` {main!r} is not a service of {', '.join(given['files'])}",
                               hint="name the compose service that is the dev container")
        run = given.get("run_services")
        found += [s for s in services if s.name != main and (run is None or s.name in run)
                  and s.name not in {f.name for f in found}]
    return found, own, notes


Say = Callable[[str], None]


def converge(api: Engine, loc: Location, wanted: list[ServicePlan], branch_id: str, step: Say,
             wait: bool = True) -> list[str]:
    """Bring a branch's services to their plans, in order: made (volumes seeded where asked), made
    anew when their spec changed, started; with `wait`, each ready before the next that depends on
    it. `step` is told what is under way ("seed db", "service db"). Lines that say what went wrong
    and did not stop the rest (a seed that could not be taken) are returned."""
    from dualgit.worktrees import seed

    notes: list[str] = []
    current = {r.service: r for r in listed(api, loc.common_dir, loc.worktree)}
    synced = _synced(api, loc, branch_id)
    asked: dict[str, str] = {}  # a service -> the strictest condition another's depends_on puts on it
    for plan in wanted:
        for other, condition in plan.service.depends_on.items():
            if CONDITIONS.index(condition) > CONDITIONS.index(asked.get(other, CONDITIONS[0])):
                asked[other] = condition
    for plan in wanted:
        copied = copied_binds(loc, plan.service) if synced else None
        body = body_for(plan, branch_id, copied, loc)
        have = current.pop(plan.service.name, None)
        if have is not None and have.spec != body["Labels"][labels.SPEC]:
            remove_service(api, have)
            have = None
        if have is None:
            made = ensure_volumes(api, loc, plan)
            if made and plan.service.seed:
                step(f"seed {plan.service.name}")
                notes += seed.fill(api, loc, plan.service, plan.image_id, plan.name, made)
            step(f"service {plan.service.name}")
            try:
                created = api.create_container(body, plan.name)
            except ApiError as exc:
                if exc.status != 409:
                    raise DualgitError(f"cannot create service {plan.service.name}'s container {plan.name}: "
                                       f"{exc.message}") from None
                created = plan.name  # another run made it meanwhile
            if copied:
                api.put_archive(created, "/", copied)
            _start(api, created, plan.name)
        elif have.state != "running":
            step(f"service {plan.service.name}")
            if have.state == "paused":
                api.unpause(have.id)
            else:
                _start(api, have.id, plan.name)
        if wait:
            step(f"service {plan.service.name}")
            ready(api, loc, plan, asked.get(plan.service.name, CONDITIONS[0]))
    for gone in current.values():  # a service no longer declared: its container goes, its volumes stay
        remove_service(api, gone)
    return notes


def _synced(api: Engine, loc: Location, branch_id: str) -> bool:
    """Whether the branch's engine gets its worktree synced (`sync.wanted`), so that a bind of a
    path here would show an empty folder there."""
    from dualgit.config import load
    from dualgit.engine.several import holding
    from dualgit.worktrees.sync import wanted

    return wanted(holding(api, branch_id).endpoint, load(loc.worktree))


def copied_binds(loc: Location, service: Service) -> bytes:
    """A tar of what the service's binds of files and folders in the worktree show, each at its
    place inside (b"": none); its links stay links, and a path that leads out of the worktree is
    left out."""
    import io
    import os
    import tarfile

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = 0  # the digest follows what the files hold
        return info

    root = os.path.realpath(loc.worktree)
    out = io.BytesIO()
    added = 0
    with tarfile.open(fileobj=out, mode="w") as tar:
        for host, inside, _read_only in service.binds:
            source = os.path.join(root, host)
            parent = os.path.realpath(os.path.dirname(source))
            if host and os.path.lexists(source) and (parent + "/").startswith(root + "/"):
                tar.add(source, arcname=inside.strip("/"), recursive=True, filter=plain)
                added += 1
    return out.getvalue() if added else b""


def bring_up(api: Engine, loc: Location, wanted: tuple[Service, ...], branch_id: str, step: Say,
             wait: bool = True) -> list[str]:
    """`converge` from the services as declared: their images pulled or built here (so in the
    background, where the branch was just made)."""
    from dualgit.naming import container_name, repo_name

    plans = plan_services(loc, container_name(loc.common_dir, loc.worktree), wanted, api, True,
                          repo_name(loc.common_dir))
    return converge(api, loc, plans, branch_id, step, wait)


def _start(api: Engine, container: str, name: str) -> None:
    try:
        api.start(container)
    except ApiError as exc:
        raise DualgitError(f"service container {name} does not start: {exc.message}",
                           hint=f"see `docker logs {name}`; `git dual up --recreate` makes it anew") from None


def ready(api: Engine, loc: Location, plan: ServicePlan, condition: str = "service_started",
          seconds: float = READY_SECONDS) -> None:
    """Until the service is ready: healthy, where it (or its image) has a healthcheck; else each
    of its ports listens in the branch's namespace (the agent's `listen`); or, where another
    service waits for it to complete (`service_completed_successfully`), until it exited 0. One
    that fails, exits (a one-shot with no restart that exits 0 is done), or is not ready in
    time, is an error carrying its last log lines."""
    from dualgit.naming import container_name
    from dualgit.worktrees import agent

    branch = container_name(loc.common_dir, loc.worktree)
    until = time.monotonic() + seconds
    while True:
        try:
            info = api.inspect_container(plan.name)
        except ApiError as exc:
            raise DualgitError(f"service {plan.service.name} is gone: {exc.message}") from None
        status = info.get("State") or {}
        health = (status.get("Health") or {}).get("Status") or None  # Podman: "" when it has no check
        state = status.get("Status")  # created, running, restarting, exited, dead
        exited = state in ("exited", "dead")
        if exited and status.get("ExitCode") == 0 and plan.service.restart in ("no", "on-failure"):
            return  # a one-shot (a migration) that is done
        if exited or state == "restarting" or info.get("RestartCount"):
            raise _not_ready(api, plan, f"exited with code {status.get('ExitCode')}")
        if condition != "service_completed_successfully" and (
                health == "healthy" or (health is None and all(p in agent.listening(branch) for p in plan.service.ports))):
            return
        if time.monotonic() > until:
            raise _not_ready(api, plan, f"was not ready within {seconds:.0f}s ({health or 'its ports do not listen'})")
        time.sleep(0.1)


def _not_ready(api: Engine, plan: ServicePlan, why: str) -> DualgitError:
    tail = logs_tail(api, plan.name)
    return DualgitError(f"service {plan.service.name} {why}" + (f"; its last lines:\n{tail}" if tail else ""),
                        hint=f"`git dual logs --service {plan.service.name}` shows its log")


