"""What a dualgit plugin can do. A plugin is a module (or object) with functions marked
`@hookimpl` (`from dualgit import hookimpl`), registered under the `dualgit` entry-point group:

    [project.entry-points.dualgit]
    my-step = "my_package.my_module"

Implementations may take fewer arguments than a spec names, so specs can grow without breaking them.
Plugins get a `Context`: plain data about the repository, the worktree and its `.dual.toml`,
never the Docker client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("dualgit")
hookimpl = pluggy.HookimplMarker("dualgit")


@dataclass(frozen=True)
class Context:
    repo_dir: str  # the repository's common git dir
    repo_name: str
    main_worktree: str | None  # None for a bare repository
    worktree: str  # this worktree's absolute path (also its path inside the container)
    branch: str | None  # None when HEAD is detached
    container: str  # the container's name
    config: dict[str, Any]  # the worktree's `.dual.toml` as plain data ({} when it has none)


@dataclass
class ContainerSettings:
    """What a plugin adds to a worktree's container. Merged over all plugins; `.dual.toml` wins."""

    env: dict[str, str] = field(default_factory=dict)
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (host path, container path), read-only
    volumes: dict[str, str] = field(default_factory=dict)  # a name of the plugin's choosing -> container path
    ports: list[int] = field(default_factory=list)
    user: str | None = None  # who `git dual exec` runs as
    workspace: str | None = None  # where the project expects its worktree inside, besides the worktree's own path
    # env keys whose values were made from the host's variables (`${localEnv:VAR}`): the key -> the
    # variables read. A repository's file asks for them, so they reach the container once allowed.
    env_from_host: dict[str, list[str]] = field(default_factory=dict)
    remap_user: bool = True  # False: the user keeps its ids (devcontainer.json's updateRemoteUserUID: false)
    init: bool = True  # whether the engine's init runs as PID 1 (devcontainer.json's `init`)
    image_command: bool = False  # the image's own entrypoint and command run too (overrideCommand: false)
    port_labels: dict[int, str] = field(default_factory=dict)  # a port -> what it is (portsAttributes' label)
    # What widens the container's reach beyond its worktree. dualgit applies it only once the user
    # has said yes on the host (`git dual allow`), since a repository's files ask for it.
    binds: list[tuple[str, str, bool]] = field(default_factory=list)  # (host path, container path, read-only)
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # HOST[:CONTAINER[:PERMISSIONS]], as `docker run --device`
    network_mode: str | None = None  # "host"
    pid_mode: str | None = None  # "host"
    # What the plugin read and does not apply: (key, why), each said in one line.
    not_honoured: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Environment:
    """Where a worktree's environment is described, as `git dual inspect` reports it: the file read
    (relative to the worktree), and what it asks for beyond an image. Paths relative to the worktree."""

    source: str
    build: dict[str, Any] | None = None  # dockerfile, context, args, target
    compose: dict[str, Any] | None = None  # files, service, run_services
    features: list[dict[str, Any]] = field(default_factory=list)  # {"id", "options"}
    feature_order: list[str] = field(default_factory=list)  # overrideFeatureInstallOrder
    user: str | None = None  # whom the features install for (remoteUser, else containerUser)


@dataclass(frozen=True)
class Step:
    """One named setup step. `command` runs inside the container, in the worktree, through `sh -c`
    when it is a string, as the container's user (the worktree's owner, where that matters), or as
    root with `root`; `run` runs on the host with the context. Steps run in `order`, then name."""

    name: str
    order: int = 500
    command: str | list[str] | None = None
    run: Callable[[Context], None] | None = None
    root: bool = False
    # When it runs: "create" (by the setup runner, once the container is made), "start" (by the agent
    # inside, on every start of the container, a wake and a reboot's too, after setup; `command` only),
    # or "attach" (before `git dual shell`'s shell; `command` only).
    when: str = "create"


@hookspec
def dualgit_config_keys() -> dict[str, Any] | list[str]:  # type: ignore[empty-body]
    """Called when `.dual.toml` is read: the top-level keys this plugin reads, so that they are not
    reported as unknown, each with the type its value must have: `{"cache_dirs": list[str]}`, a table
    as a dict of its keys' types (`{"shared": {"files": list[str]}}`), unions (`str | list[str]`).
    dualgit checks the values when it reads the file, and reports a wrong one as the user's
    mistake, with file:line:column. A plain list of names declares keys without types. Every
    implementation is called; the keys are joined."""


@hookspec(firstresult=True)
def dualgit_image(ctx: Context) -> str | None:
    """Called when a container is about to be made and `.dual.toml` names no image: return the image
    to use, or None to leave the choice to another plugin. The first non-None answer wins; mark an
    implementation `trylast=True` to be asked last (a fallback)."""


@hookspec
def dualgit_container_settings(ctx: Context) -> ContainerSettings | None:
    """Called when a container is about to be made: environment, mounts, named volumes and ports to
    add. Every implementation is called and the answers merged; `.dual.toml` wins on conflicts. The
    settings are part of what the container is made from: a change recreates it on `git dual up`."""


@hookspec
def dualgit_environment(ctx: Context) -> Environment | None:
    """The file this plugin read the worktree's environment from, and what it asks for (a build,
    compose, features), for `git dual inspect`; None: no such file. Reads files only: no engine."""


@hookspec
def dualgit_worktree_added(ctx: Context) -> None:
    """Called by the post-checkout hook when git has just made a new worktree, before the hook
    returns and before its container is made. It blocks git (`git worktree add` waits for it), so
    keep it to quick host-side work, such as copying a few files, that an editor or an agent opening
    the worktree at once must find; everything else belongs in a setup step. Every implementation
    is called; one that raises is said as a warning, and the hook goes on."""


@hookspec
def dualgit_setup_steps(ctx: Context) -> list[Step] | None:
    """Called when setup starts (after a new container is up, or on `git dual up --setup`): the
    steps to run. Every implementation is called; all steps run in order, in the background."""


@hookspec
def dualgit_setup(ctx: Context) -> None:
    """Runs the whole setup; dualgit's own implementation runs the steps. Plugins wrap it (timing,
    logging, notifications) with `@hookimpl(wrapper=True)`: a generator whose `yield` runs the
    steps (and raises what they raised)."""


@hookspec
def dualgit_container_removed(ctx: Context) -> None:
    """Called after a worktree's container was removed because its worktree went away (or on
    `git dual rm`). Volumes dualgit labelled for the worktree are removed by dualgit itself."""
