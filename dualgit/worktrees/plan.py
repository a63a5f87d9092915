"""Plan, then converge: what a worktree's container is made from, as plain data.

`plan(loc, config, api)` reads the worktree's files and the plugins, asks the engine what it must
(the image's id, the image's user), and makes the pieces every container shares when they are
missing (the agent's tools volume, dualgit's network); it makes nothing of this worktree's own.
`containers.converge(api, plan)` then creates, adopts, recreates or starts the container, as
`kubectl apply` does. The environments and services work extends the plan, not the loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dualgit.background import state_dir
from dualgit.config import Config, Limits, limits, load, load_user
from dualgit.config.services import Service
from dualgit.errors import DualgitError
from dualgit.git.locate import Location, read_head
from dualgit.hookspecs import ContainerSettings, Context, Environment, Step
from dualgit.naming import container_name, repo_name, volume_name
from dualgit.worktrees import agent, features, labels, network, owner, readonly, sync
from dualgit.worktrees.images import Build, build_tag, image_id
from dualgit.worktrees.services import compose_services, services_for

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine

FALLBACK_IMAGE = "debian:bookworm-slim"  # when neither .dual.toml nor any plugin names one
KEEPALIVE = ["tail", "-f", "/dev/null"]  # busybox and coreutils both have it; tini (Init) reaps and forwards



@dataclass
class Plan:
    """What a worktree's container is made from. `body` is the engine's create body; its
    `dualgit.spec` label is the hash that says when the container must be made anew."""

    location: Location
    name: str
    image: str
    image_id: str
    settings: ContainerSettings  # after the user's consent: what widens its reach and was not allowed is gone
    held_back: list[str]  # what widens its reach and waits for `git dual allow`
    notes: list[str]  # one line each: what is held back or not honoured
    user: str | None  # who runs inside (`owner.container_user`); None keeps the image's
    remap: bool  # whether that user is remapped to the worktree's owner once made
    tools: str | None  # the agent's tools volume; None: no agent
    caps: Limits
    network: str | None
    serve: dict[int, str] = field(default_factory=dict)
    build: Build | features.FeatureBuild | None = None  # what makes the image, when it is built
    start: str | None = None  # the script the agent runs on every start (the steps whose `when` is start)
    services: tuple[Service, ...] = ()  # each runs in a container of its own in this one's namespace
    synced: bool = False  # the engine is on another machine: volumes kept in step (`sync.py`), not binds
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return str(self.body["Labels"][labels.SPEC])


def plan(loc: Location, config: Config | None, api: Engine, pull: bool = True) -> Plan:
    """The plan for `loc`'s container. Without `pull`, an image not on this machine raises
    ImageNotHere."""
    config = config or load(loc.worktree)
    name = container_name(loc.common_dir, loc.worktree)
    ctx = context_for(loc, name, config)
    environments = environments_for(ctx)
    image, build = image_and_build(ctx, config, environments)
    wanted = container_settings(ctx, config)
    if any(e.compose for e in environments):  # devcontainer.json's compose service: its environment, under the rest
        service = compose_services(ctx, config, environments)[1]
        if service is not None:
            wanted.env = {**service.env, **wanted.env}
    start = [s for s in steps_for(ctx) if s.when == "start"]
    if isinstance(build, features.FeatureBuild):
        asked, entrypoints = features.runtime(build)
        wanted = container_settings(ctx, config, [("features", asked), ("", wanted)])
        start = [Step(f"feature entrypoint {e}", command=f"{e} {agent.BUSYBOX} sleep 2147483647 >/dev/null 2>&1 &")
                 for e in entrypoints] + start
    extra, held, notes = allowed_settings(loc, wanted)
    user, remap = owner.container_user(api, extra.user)
    remap = remap and extra.remap_user
    tools = agent.tools_volume(api)
    if tools is None:
        notes.append(f"no {agent.TOOLS_IMAGE} image here or to pull: it goes without its agent "
                     "(no `serve`, and a server on 127.0.0.1 inside is not reached)")
    made_from = image_id(api, image, pull, build, loc.worktree)
    extra.env = with_container_env(api, made_from, extra.env)
    if extra.image_command and tools is not None:  # overrideCommand: false: the agent runs the image's own
        found_config = api.inspect_image(made_from).get("Config") or {}
        own = [*(found_config.get("Entrypoint") or []), *(found_config.get("Cmd") or [])]
        if own:
            import shlex

            start.insert(0, Step("the image's own command", command=f"{shlex.join(own)} >/dev/null 2>&1 &"))
    synced = sync.wanted(api.endpoint, config)
    if synced and (extra.mounts or extra.binds):
        notes.append("the host's folders it asks to mount are not mounted: the engine is on another machine "
                     f"({', '.join([m[0] for m in extra.mounts] + [b[0] for b in extra.binds])})")
        extra.mounts, extra.binds = [], []
    found = Plan(loc, name, image, made_from, extra, held, notes, user, remap, tools, limits(config, load_user()),
                 network.network_for(api, name, loc.common_dir, loc.worktree), dict(config.serve), build,
                 script(start), services_for(ctx, config, environments), synced)
    found.body = create_body(found, config)
    return found


CONTAINER_VAR = re.compile(r"\$\{containerEnv:([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def with_container_env(api: Engine, image: str, env: dict[str, str]) -> dict[str, str]:
    """`env` with devcontainer.json's `${containerEnv:VAR[:default]}` expanded from the container's
    environment: the image's, under the values that need no expanding (one image inspect, when asked)."""
    if not any("${containerEnv:" in value for value in env.values()):
        return env
    known = dict(item.split("=", 1) for item in (api.inspect_image(image).get("Config") or {}).get("Env") or []
                 if "=" in item)
    known.update({k: v for k, v in env.items() if "${containerEnv:" not in v})
    return {k: CONTAINER_VAR.sub(lambda m: str(known.get(m[1], m[2] or "")), v) for k, v in env.items()}


def context_for(loc: Location, name: str | None = None, config: Config | None = None) -> Context:
    """What plugins are told about a worktree."""
    common = loc.common_dir
    main = os.path.dirname(common) if os.path.basename(common) == ".git" else None
    config = config or load(loc.worktree)
    return Context(common, repo_name(common), main, loc.worktree, read_head(loc.gitdir)[0],
                   name or container_name(common, loc.worktree), dict(config.data))


def image_for(ctx: Context, config: Config) -> str:
    """The image's name: .dual.toml's `image`, else a build's tag, else a plugin's image, else the fallback."""
    return image_and_build(ctx, config)[0]


def environments_for(ctx: Context) -> list[Environment]:
    """The plugins' environments (devcontainer.json's), asked once per plan."""
    from dualgit.plugins import plugins

    return [e for e in plugins().call("dualgit_environment", ctx=ctx) if e is not None]


def image_and_build(ctx: Context, config: Config, environments: list[Environment] | None = None,
                    ) -> tuple[str, Build | features.FeatureBuild | None]:
    """The image, and the build that makes it when it is one (.dual.toml's `build`, else a plugin's
    environment's, such as devcontainer.json's `build` or its compose service's)."""
    if environments is None:
        environments = environments_for(ctx)
    image, build = _base_image(ctx, config, environments)
    environment = next((e for e in environments if e.features), None)
    if environment is None:
        return image, build
    here = os.path.join(ctx.worktree, os.path.dirname(environment.source))
    wanted = []
    for given in environment.features:
        ref = str(given["id"])
        folder = None
        if features.local(ref):
            folder = os.path.realpath(os.path.join(here, ref))
            root = os.path.realpath(ctx.worktree)
            if not folder.startswith(root.rstrip("/") + "/") or not os.path.isdir(folder):
                raise DualgitError(f"{environment.source}: feature {ref} is not a folder inside the worktree",
                                   hint="a local feature is a folder beside devcontainer.json, such as ./features/x")
        wanted.append(features.Feature(ref, dict(given.get("options") or {}), folder))
    users = (environment.user or "root", environment.user or "root")
    made = features.FeatureBuild(image, build, tuple(wanted), tuple(environment.feature_order), users, environment.source)
    return features.tag(ctx.repo_name, image, wanted, users), made


def _base_image(ctx: Context, config: Config, environments: list[Environment]) -> tuple[str, Build | None]:
    """The image features (if any) go on: .dual.toml's, else a build's, else a plugin's, else the fallback."""
    from dualgit.plugins import plugins

    if config.image:
        return config.image, None
    found = build_of(ctx, config, environments)
    if found is not None:
        return build_tag(ctx.worktree, ctx.repo_name, found), found
    if any(e.compose for e in environments):  # devcontainer.json's compose service is the branch's container
        own = compose_services(ctx, config, environments)[1]
        if own is not None and own.build is not None:
            given = own.build
            made = Build(given["dockerfile"], given["context"], dict(given.get("args") or {}), given.get("target"),
                         own.at.split(":")[0])
            return build_tag(ctx.worktree, ctx.repo_name, made), made
        if own is not None and own.image:
            return own.image, None
    return plugins().call("dualgit_image", ctx=ctx) or FALLBACK_IMAGE, None


def build_of(ctx: Context, config: Config, environments: list[Environment]) -> Build | None:
    """The build this worktree's image comes from, if any (.dual.toml's, else the first of the
    plugins' `environments` that has one); its paths must stay inside the worktree (the files that
    name them are the container's to write, and the context goes to the engine)."""
    if config.build is not None:
        given, source = config.build, ".dual.toml"
    else:
        building = next((e for e in environments if e.build), None)
        if building is None or building.build is None:
            return None
        given, source = building.build, building.source
    root = os.path.realpath(ctx.worktree)
    for key in ("dockerfile", "context"):
        real = os.path.realpath(os.path.join(ctx.worktree, given[key]))
        if real != root and not real.startswith(root.rstrip("/") + "/"):
            raise DualgitError(f"{source}: the build's {key} {given[key]} is outside the worktree",
                               hint="give a path inside it: the build's files come from the worktree only")
    return Build(given["dockerfile"], given["context"], dict(given.get("args") or {}), given.get("target"), source)


def container_settings(ctx: Context, config: Config, each: list[tuple[str, ContainerSettings]] | None = None,
                       ) -> ContainerSettings:
    """The plugins' settings merged, `.dual.toml`'s env over them. `each`: the plugins' own, by name,
    when the caller has asked them already."""
    from dualgit.plugins import plugins

    if each is None:
        each = plugins().each("dualgit_container_settings", ctx=ctx)
    merged = ContainerSettings()
    for _plugin, extra in each:
        if extra is None:
            continue
        merged.env.update(extra.env)
        merged.mounts.extend(extra.mounts)
        merged.volumes.update(extra.volumes)
        merged.ports.extend(p for p in extra.ports if p not in merged.ports)
        merged.user = extra.user or merged.user
        merged.workspace = extra.workspace or merged.workspace
        merged.env_from_host.update(extra.env_from_host)
        merged.remap_user = merged.remap_user and extra.remap_user
        merged.init = merged.init and extra.init
        merged.image_command = merged.image_command or extra.image_command
        merged.port_labels.update(extra.port_labels)
        merged.binds.extend(extra.binds)
        merged.privileged = merged.privileged or extra.privileged
        merged.cap_add.extend(c for c in extra.cap_add if c not in merged.cap_add)
        merged.security_opt.extend(o for o in extra.security_opt if o not in merged.security_opt)
        merged.devices.extend(d for d in extra.devices if d not in merged.devices)
        merged.network_mode = extra.network_mode or merged.network_mode
        merged.pid_mode = extra.pid_mode or merged.pid_mode
        merged.not_honoured.extend(extra.not_honoured)
    merged.env.update(config.env)  # .dual.toml wins
    return merged


def script(steps: list[Step]) -> str | None:
    """Steps as one POSIX sh script that runs them in order and stops at the first that fails,
    saying which (None: no steps). A string command runs as it is; a list, as its argv."""
    import shlex

    if not steps:
        return None
    lines = []
    for step in steps:
        command = step.command if isinstance(step.command, str) else shlex.join(step.command or ["true"])
        lines.append(f"echo {shlex.quote('==> ' + step.name)}")
        lines.append(f"( {command}\n) || {{ code=$?; echo {shlex.quote('==> ' + step.name)} failed with exit $code; "
                     "exit $code; }")
    return "\n".join(lines) + "\n"


def steps_for(ctx: Context) -> list[Step]:
    """Every plugin's setup steps, in the order they run."""
    from dualgit.plugins import plugins

    found = [step for steps in plugins().call("dualgit_setup_steps", ctx=ctx) if steps for step in steps]
    return sorted(found, key=lambda s: (s.order, s.name))


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


def create_body(plan: Plan, config: Config) -> dict[str, Any]:
    """What the engine is asked to make: the plan as its create call's body, labels and all. With
    tools (the tools volume), the agent is the main process; caps are kept out of the spec hash."""
    loc, extra, name, tools, caps, network = plan.location, plan.settings, plan.name, plan.tools, plan.caps, plan.network
    workspace = extra.workspace if extra.workspace and extra.workspace != loc.worktree else None
    # synced: volumes in the host's folders' places (`sync.mounts`); else the worktree, its git dir guarded
    binds = [] if plan.synced else [f"{loc.worktree}:{loc.worktree}"]
    guarded = sync.mounts(loc, name, workspace, agent.STATE) if plan.synced else readonly.mounts(loc)
    if workspace and not plan.synced:  # the worktree again where the project expects it, its git dir as guarded there too
        binds.append(f"{loc.worktree}:{workspace}")
        guarded += [{**m, "Target": workspace + str(m["Target"])[len(loc.worktree):]} for m in guarded
                    if str(m["Target"]).startswith(loc.worktree.rstrip("/") + "/")]
    binds += [f"{host}:{inside}:ro" for host, inside in extra.mounts]
    binds += [f"{host}:{inside}" + (":ro" if read_only else "") for host, inside, read_only in extra.binds]
    http_ports = [*config.ports, *(p for p in extra.ports if p not in config.ports)]
    service_ports = {p: s.name for s in plan.services for p in s.ports}
    http_ports += [p for s in plan.services for p in s.http if p not in http_ports]  # a web UI's: a URL
    tcp_ports = [*config.tcp_ports, *(p for p in service_ports if p not in config.tcp_ports and p not in http_ports)]
    exposed: dict[str, dict[str, str]] = {f"{p}/tcp": {} for p in (*http_ports, *tcp_ports)}
    env = {**extra.env, **config.env}
    parts = agent.body_parts(name, workspace or loc.worktree, tuple(http_ports), tools) if tools else None
    if parts is not None:
        env.update(parts.env)
        binds += parts.binds if not plan.synced else []  # synced: the state folder is a volume (`sync.mounts`)
        exposed.update({p: {} for p in parts.ports})
    body: dict[str, Any] = {
        "Image": plan.image,
        "Entrypoint": KEEPALIVE[:1],
        "Cmd": KEEPALIVE[1:],
        "WorkingDir": workspace or loc.worktree,
        "Hostname": name,
        "Env": [f"{k}={v}" for k, v in sorted(env.items())],
        "ExposedPorts": exposed,
        "HostConfig": {
            "Init": extra.init,
            "Binds": binds,
            "Mounts": [{"Type": "volume", "Source": volume_name(name, key), "Target": target}
                       for key, target in sorted(extra.volumes.items())] + guarded
                      + (parts.mounts if parts else []),
            # synced: nothing published on the engine's host; its ports are forwarded (`remote/forwards.py`)
            "PortBindings": {p: [{"HostIp": "127.0.0.1", "HostPort": ""}] for p in exposed} if not plan.synced else {},
            "RestartPolicy": {"Name": "unless-stopped"},
        },
    }
    if network is not None:
        body["HostConfig"]["NetworkMode"] = network
    if plan.services:  # each service's name is the branch's loopback: they share its namespace
        body["HostConfig"]["ExtraHosts"] = [f"{s.name}:127.0.0.1" for s in plan.services]
    body["HostConfig"].update(power(extra))
    if parts is not None:
        body["Entrypoint"], body["Cmd"] = parts.entrypoint, []
    if plan.user:
        body["User"] = plan.user
    spec = hashlib.sha256(json.dumps([body, plan.image_id], sort_keys=True).encode()).hexdigest()[:16]
    if caps:  # not in the spec: a change of caps is applied live (`apply_caps`), not by making it anew
        body["HostConfig"].update(resources(caps))
    body["Labels"] = {
        labels.REPO: loc.common_dir,
        labels.WORKTREE: loc.worktree,
        labels.GITDIR: loc.gitdir,
        labels.SPEC: spec,
        labels.PORTS: ",".join(map(str, http_ports)),
        labels.TCP_PORTS: ",".join(map(str, tcp_ports)),
        **({labels.SERVICES: ",".join(s.name for s in plan.services)} if plan.services else {}),
        **({labels.PORT_LABELS: json.dumps({str(k): v for k, v in sorted({**service_ports, **extra.port_labels}.items())})}
           if extra.port_labels or service_ports else {}),
        labels.STATE: state_dir(),  # not in the spec: whose proxy serves it
    }
    if parts is not None:
        body["Labels"][labels.AGENT] = "1"
    if plan.synced:
        body["Labels"][labels.SYNC] = "1"
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


