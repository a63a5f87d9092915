"""One container per worktree: what it is made from, and bringing it up, down and away.

Labels are the only state: a container is found by `dualgit.repo` and `dualgit.worktree`, and
`dualgit.spec` says what it was made from, so `up` knows when to recreate it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from dualgit.background import state_dir
from dualgit.config import Config, Limits, limits, load, load_user
from dualgit.engine.api import ApiError, DockerAPI
from dualgit.errors import DualgitError
from dualgit.git.locate import Location, read_head, registered
from dualgit.hookspecs import ContainerSettings, Context
from dualgit.naming import container_name, repo_name, volume_name
from dualgit.worktrees import agent, idle, labels, network, owner, readonly
from dualgit.worktrees.inventory import Container, list_containers, remove

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine

FALLBACK_IMAGE = "debian:bookworm-slim"  # when neither .dual.toml nor any plugin names one
KEEPALIVE = ["tail", "-f", "/dev/null"]  # busybox and coreutils both have it; tini (Init) reaps and forwards


def context_for(loc: Location, name: str | None = None, config: Config | None = None) -> Context:
    """What plugins are told about a worktree."""
    common = loc.common_dir
    main = os.path.dirname(common) if os.path.basename(common) == ".git" else None
    config = config or load(loc.worktree)
    return Context(common, repo_name(common), main, loc.worktree, read_head(loc.gitdir)[0],
                   name or container_name(common, loc.worktree), dict(config.data))


def settings_for(ctx: Context, config: Config) -> tuple[str, ContainerSettings]:
    """The image and the container settings: `.dual.toml` first, then the plugins."""
    from dualgit.plugins import plugins

    found = plugins()
    image = config.image or found.call("dualgit_image", ctx=ctx) or FALLBACK_IMAGE
    merged = ContainerSettings()
    for extra in found.call("dualgit_container_settings", ctx=ctx):
        if extra is None:
            continue
        merged.env.update(extra.env)
        merged.mounts.extend(extra.mounts)
        merged.volumes.update(extra.volumes)
        merged.ports.extend(p for p in extra.ports if p not in merged.ports)
        merged.user = extra.user or merged.user
        merged.binds.extend(extra.binds)
        merged.privileged = merged.privileged or extra.privileged
        merged.cap_add.extend(c for c in extra.cap_add if c not in merged.cap_add)
        merged.security_opt.extend(o for o in extra.security_opt if o not in merged.security_opt)
        merged.devices.extend(d for d in extra.devices if d not in merged.devices)
        merged.network_mode = extra.network_mode or merged.network_mode
        merged.pid_mode = extra.pid_mode or merged.pid_mode
        merged.not_honoured.extend(extra.not_honoured)
    merged.env.update(config.env)  # .dual.toml wins
    return image, merged


def create_body(loc: Location, config: Config, image_id: str, image: str | None = None,
                extra: ContainerSettings | None = None, user: str | None = None,
                tools: str | None = None, caps: Limits | None = None, network: str | None = None) -> dict[str, Any]:
    """What the container is made from. `user` is who runs inside (`owner.container_user`); None
    keeps the image's. With `tools` (the tools volume), the agent is its main process. `caps`: its
    memory and CPU caps. `network`: the one it joins (`network.network_for`), else the engine's."""
    extra = extra or ContainerSettings()
    name = container_name(loc.common_dir, loc.worktree)
    binds = [f"{loc.worktree}:{loc.worktree}"]  # the git dir: `readonly.mounts`
    binds += [f"{host}:{inside}:ro" for host, inside in extra.mounts]
    binds += [f"{host}:{inside}" + (":ro" if read_only else "") for host, inside, read_only in extra.binds]
    http_ports = [*config.ports, *(p for p in extra.ports if p not in config.ports)]
    exposed: dict[str, dict[str, str]] = {f"{p}/tcp": {} for p in (*http_ports, *config.tcp_ports)}
    env = {**extra.env, **config.env}
    parts = agent.body_parts(name, loc.worktree, tuple(http_ports), tools) if tools else None
    if parts is not None:
        env.update(parts.env)
        binds += parts.binds
        exposed.update({p: {} for p in parts.ports})
    body: dict[str, Any] = {
        "Image": image or config.image or FALLBACK_IMAGE,
        "Entrypoint": KEEPALIVE[:1],
        "Cmd": KEEPALIVE[1:],
        "WorkingDir": loc.worktree,
        "Hostname": name,
        "Env": [f"{k}={v}" for k, v in sorted(env.items())],
        "ExposedPorts": exposed,
        "HostConfig": {
            "Init": True,
            "Binds": binds,
            "Mounts": [{"Type": "volume", "Source": volume_name(name, key), "Target": target}
                       for key, target in sorted(extra.volumes.items())] + readonly.mounts(loc)
                      + (parts.mounts if parts else []),
            "PortBindings": {p: [{"HostIp": "127.0.0.1", "HostPort": ""}] for p in exposed},
            "RestartPolicy": {"Name": "unless-stopped"},
        },
    }
    if network is not None:
        body["HostConfig"]["NetworkMode"] = network
    body["HostConfig"].update(power(extra))
    if parts is not None:
        body["Entrypoint"], body["Cmd"] = parts.entrypoint, []
    if user:
        body["User"] = user
    spec = hashlib.sha256(json.dumps([body, image_id], sort_keys=True).encode()).hexdigest()[:16]
    if caps:  # not in the spec: a change of caps is applied live (`apply_caps`), not by making it anew
        body["HostConfig"].update(resources(caps))
    body["Labels"] = {
        labels.REPO: loc.common_dir,
        labels.WORKTREE: loc.worktree,
        labels.GITDIR: loc.gitdir,
        labels.SPEC: spec,
        labels.PORTS: ",".join(map(str, http_ports)),
        labels.TCP_PORTS: ",".join(map(str, config.tcp_ports)),
        labels.STATE: state_dir(),  # not in the spec: whose proxy serves it
    }
    if parts is not None:
        body["Labels"][labels.AGENT] = "1"
    return body


def power(extra: ContainerSettings) -> dict[str, Any]:
    """The engine's fields for what widens a container's reach (applied only once allowed:
    `consent`); none when nothing asks for it, so that the spec of a plain container stays as it was."""
    found: dict[str, Any] = {}
    if extra.privileged:
        found["Privileged"] = True
    if extra.cap_add:
        found["CapAdd"] = sorted(extra.cap_add)
    if extra.security_opt:
        found["SecurityOpt"] = sorted(extra.security_opt)
    if extra.devices:
        found["Devices"] = [_device(d) for d in extra.devices]
    if extra.network_mode:
        found["NetworkMode"] = extra.network_mode
    if extra.pid_mode:
        found["PidMode"] = extra.pid_mode
    return found


def _device(spec: str) -> dict[str, str]:
    parts = spec.split(":")
    host = parts[0]
    inside = parts[1] if len(parts) > 1 and parts[1] else host
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"}


def resources(caps: Limits) -> dict[str, Any]:
    """The engine's resource fields for `caps`. Swap is as Docker's `--memory` alone gives it: as
    much again. Unset caps are left out (an engine cannot lift a memory cap live)."""
    found: dict[str, Any] = {}
    if caps.memory is not None:
        found["Memory"], found["MemorySwap"] = caps.memory, 2 * caps.memory
    if caps.cpus is not None:
        found["NanoCpus"] = int(caps.cpus * 1e9)
    return found


def caps_text(caps: Limits) -> str:
    return f"{caps.memory or 0} {caps.cpus or 0}"


def apply_caps(api: Engine, container: Container, caps: Limits) -> None:
    """Bring a running container's caps to `caps`, live (`docker update`), when they changed since
    they were last applied; said on stderr when the engine will not."""
    wanted = caps_text(caps)
    before = idle.applied_caps(container.name)
    if before == wanted or (before is None and caps.memory is None and caps.cpus is None):
        return
    lifted = before is not None and before.split()[0] != "0" and caps.memory is None
    update = resources(caps)
    if caps.cpus is None and before is not None and before.split()[-1] != "0":
        update["NanoCpus"] = 0  # no CPU cap any longer
    try:
        if update:
            api.update_container(container.id, update)
    except ApiError as exc:
        print(f"dualgit: warning: cannot change {container.name}'s caps in place: {exc.message} "
              "(`git dual up --recreate` makes it anew with them)", file=sys.stderr)
        return
    if lifted:
        print(f"dualgit: {container.name}'s memory cap stays until it is made anew: `git dual up --recreate` "
              "(the engine cannot lift one while it runs)", file=sys.stderr)
        return
    idle.record_caps(container.name, wanted)


def ensure_volumes(api: Engine, loc: Location, body: dict[str, Any]) -> None:
    """Create the container's named volumes with dualgit's labels (the engine would make them
    unlabelled), so that they go away with the worktree and nothing else."""
    for mount in body["HostConfig"]["Mounts"]:
        if mount["Type"] != "volume":
            continue
        api.create_volume(mount["Source"], {labels.REPO: loc.common_dir, labels.WORKTREE: loc.worktree})


class ImageNotHere(DualgitError):
    """The image is not on this machine, and the caller would not wait for a pull (the hook: git
    waits for its hooks, and a pull can take minutes)."""

    def __init__(self, image: str) -> None:
        super().__init__(f"image {image} is not on this machine")
        self.image = image


def image_id(api: Engine, image: str, pull: bool = True) -> str:
    """The local image's id; pulled first when it isn't here (said on stderr: it can take minutes)."""
    try:
        return str(api.inspect_image(image)["Id"])
    except ApiError as exc:
        if exc.status != 404:
            raise DualgitError(f"cannot inspect image {image}: {exc.message}")
    if not pull:
        raise ImageNotHere(image)
    print(f"dualgit: pulling {image} (not on this machine) ...", file=sys.stderr, flush=True)
    reason = _pull(api, image)
    try:
        return str(api.inspect_image(image)["Id"])
    except ApiError:
        raise DualgitError(
            f"image {image} is not on this machine and could not be pulled ({reason})",
            hint=f"build it (`docker build -t {image} .`) or pull it (`docker pull {image}`), "
            "or name another: `git dual config set image NAME` "
            "(`scripts/setup` builds busybox:latest and dualgit/debian:bookworm)",
        ) from None


def _pull(api: Engine, image: str) -> str:
    name, tag = image, "latest"
    if "@" not in image and ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    from dualgit.engine.dockerpy import DockerPy  # pulls are docker-py's: registry auth, its progress stream

    try:
        DockerPy(api.endpoint, timeout=600).pull(name, tag)
    except ApiError as exc:
        return exc.message
    return "no error given"


def allowed_settings(loc: Location, extra: ContainerSettings) -> tuple[ContainerSettings, list[str], list[str]]:
    """(what applies, what was held back for want of the user's yes, the lines that say what is not
    honoured): the settings that widen the container's reach apply once `git dual allow` said yes."""
    from dualgit.worktrees import consent

    lines = [f"{key} is not honoured: {why}" for key, why in extra.not_honoured]
    wanted = consent.widening(extra, loc.worktree)
    if not wanted or consent.allowed(loc.common_dir, wanted):
        return extra, [], lines
    lines.append(f"held back, since they widen the container's reach beyond its worktree: {'; '.join(wanted)} "
                 "(`git dual allow` allows them)")
    return consent.held_back(extra, loc.worktree), wanted, lines


def ensure_running(loc: Location, config: Config | None = None, api: Engine | None = None,
                   pull: bool = True, say: bool = False) -> Container:
    """Idempotent `up`: create the worktree's container, or start it, or recreate it when what it is
    made from (image, ports, env, mounts, plugin settings) changed. Concurrent callers are settled by
    the engine's name conflict: the loser adopts the winner's container. A container made here
    starts its setup in the background. Without `pull`, an image not on this machine raises
    ImageNotHere. What is held back or not honoured is said when the container is made, or with
    `say`."""
    api = api or DockerAPI()
    if not registered(loc):
        raise gone_worktree(loc)
    config = config or load(loc.worktree)
    name = container_name(loc.common_dir, loc.worktree)
    ctx = context_for(loc, name, config)
    image, extra = settings_for(ctx, config)
    extra, _held, notes = allowed_settings(loc, extra)
    if say:
        for line in notes:
            print(f"dualgit: {name}: {line}", file=sys.stderr)
    user, remap = owner.container_user(api, extra.user)
    tools = agent.tools_volume(api)
    if tools is None:
        print(f"dualgit: no {agent.TOOLS_IMAGE} image here or to pull: {name} goes without its agent "
              "(no `serve`, and a server on 127.0.0.1 inside is not reached)", file=sys.stderr)
    caps = limits(config, load_user())
    net = network.network_for(api, name, loc.common_dir, loc.worktree)
    body = create_body(loc, config, image_id(api, image, pull), image, extra, user, tools, caps, net)
    serve_changed = False
    if tools is not None:
        try:
            serve_changed = agent.write_serve(name, config.serve)
        except DualgitError as exc:
            print(f"dualgit: warning: {exc.message}", file=sys.stderr)
    made = False
    for _ in range(3):
        current = list_containers(api, loc.common_dir, loc.worktree)
        if current and current[0].spec != body["Labels"][labels.SPEC]:
            remove(api, current[0], volumes=False)
            current = []
        if current and current[0].state == "running":
            if serve_changed and not made:  # a running container: its `serve` takes the new command now
                agent.end_serve(api, name, current[0].id, sorted(config.serve), again=True)
            if not made:
                apply_caps(api, current[0], caps)
            return _after(api, loc, current[0], made)
        if current:
            apply_caps(api, current[0], caps)  # a stopped container takes an update too
            start(api, current[0])
        else:
            if not say:
                for line in notes:
                    print(f"dualgit: {name}: {line}", file=sys.stderr)
                say = True  # once
            ensure_volumes(api, loc, body)
            agent.setup_done(name, False)  # a new container: `serve` waits for its setup
            try:
                created = api.create_container(body, name)
            except ApiError as exc:
                if exc.status == 409:  # another dualgit run won the race: adopt its container
                    _check_name_is_ours(api, name, loc.common_dir)
                    continue
                raise DualgitError(f"cannot create container {name}: {exc.message}")
            made = True
            idle.record_caps(name, caps_text(caps))
            start(api, Container(created, name, "created", loc.common_dir, loc.worktree, loc.gitdir, "", "", {}))
            if remap:
                try:
                    owner.prepare(api, created, extra.user)
                except DualgitError:
                    remove(api, Container(created, name, "running", loc.common_dir, loc.worktree, loc.gitdir,
                                          "", ""), volumes=False)  # made anew by the next try
                    raise
        found = list_containers(api, loc.common_dir, loc.worktree)
        if found and found[0].state == "running":
            return _after(api, loc, found[0], made)
    raise DualgitError(f"container {name} kept changing while dualgit brought it up", hint="run `git dual up` again")


def gone_worktree(loc: Location) -> DualgitError:
    return DualgitError(f"{loc.worktree} is no longer a worktree git knows (removed meanwhile?)",
                        hint="`git worktree list` shows the worktrees; `git worktree add` makes one anew")


def _after(api: Engine, loc: Location, container: Container, made: bool) -> Container:
    if not registered(loc):  # removed while we made it: reconcile wins, the container goes too
        remove(api, container, volumes=True)
        raise gone_worktree(loc)
    if made:
        from dualgit.worktrees.setup_state import start_background

        start_background(loc, container.name, container.id)
    return container


def _check_name_is_ours(api: Engine, name: str, repo: str) -> None:
    try:
        info = api.inspect_container(name)
    except ApiError:
        return  # gone again: the next round creates it
    if not labels.owned(info.get("Config", {}).get("Labels"), repo):
        raise DualgitError(
            f"a container named {name} exists and is not dualgit's",
            hint=f"rename or remove it yourself (`docker rename {name} {name}-old`); dualgit will not touch it",
        )


def start(api: Engine, container: Container) -> None:
    message = ""
    for attempt in range(4):
        try:
            api.start(container.id)
            idle.woke(container.name)
            return
        except ApiError as exc:
            message = exc.message
        if "already allocated" not in message and "address already in use" not in message:
            break
        # Concurrent starts can draw the same ephemeral host port; the engine picks anew next time.
        import time

        time.sleep(0.05 * (attempt + 1))
    if container.state == "paused":
        api.unpause(container.id)
        idle.woke(container.name)
        return
    raise DualgitError(
        f"container {container.name} for {container.worktree} does not start: {message}",
        hint=f"see `docker logs {container.name}`; `git dual up --recreate` makes it anew",
    )
