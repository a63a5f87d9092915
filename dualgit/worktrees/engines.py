"""Which engine each worktree's container runs on, so that heavy branches can run on another machine
and light ones here. The first of these that names one: the user's `[[engines]]` rules (by
repository and branch), the branch's `.dual.toml` `engine`, the user's `engine`; else DEFAULT, the
engine `find.endpoint` finds (DOCKER_HOST, the current context, this machine's socket).

Where a container is made is recorded (`state.engine_of`, host-only), and every command finds it
there: a config that names another engine later moves nothing by itself (`up` says how), and a
container writing `.dual.toml` does not send a command elsewhere. Commands that see every branch
get `client()`: one engine, or `Several` when the recorded ones differ."""

from __future__ import annotations

import glob
import os
import sys
from typing import TYPE_CHECKING

from dualgit.background import state_dir
from dualgit.config import Config, UserConfig, load_user
from dualgit.engine import find
from dualgit.engine.api import DockerAPI
from dualgit.engine.find import DEFAULT
from dualgit.errors import DualgitError
from dualgit.git.locate import Location
from dualgit.naming import container_name, repo_name
from dualgit.worktrees import labels, state

if TYPE_CHECKING:
    from collections.abc import Callable

    from dualgit.engine.interface import Engine
    from dualgit.engine.several import Several


def wanted(loc: Location, config: Config, user: UserConfig | None = None, branch: str | None = None) -> str:
    """The engine's name the config gives this worktree (pure but for reading the user's file and,
    when `branch` is not given, the worktree's HEAD)."""
    user = user if user is not None else load_user()
    if user.engines:
        branch = branch if branch is not None else _branch(loc)
        for rule in user.engines:
            if rule.matches(repo_name(loc.common_dir), branch):
                return rule.engine
    return config.engine or user.engine or DEFAULT


def _branch(loc: Location) -> str | None:
    """The worktree's branch, from its HEAD (None: detached)."""
    try:
        with open(os.path.join(loc.gitdir, "HEAD")) as f:
            head = f.read().strip()
    except OSError:
        return None
    return head.removeprefix("ref: refs/heads/") if head.startswith("ref: refs/heads/") else None


def recorded() -> set[str]:
    """The names of the engines that containers were made on (DEFAULT among them)."""
    found = {DEFAULT}
    for file in glob.glob(os.path.join(state_dir("setup"), "*.engine")):
        try:
            with open(file) as f:
                found.add(f.read().strip() or DEFAULT)
        except OSError:
            continue
    return found


def route(found: dict[str, str]) -> str:
    """The engine's name for an object with these labels: its worktree's container's."""
    repo, worktree = found.get(labels.REPO), found.get(labels.WORKTREE) or found.get(labels.SERVICE_OF)
    return state.engine_of(container_name(repo, worktree)) if repo and worktree else DEFAULT


def client(kind: Callable[..., Engine] = DockerAPI) -> Engine:
    """A client of `kind` (DockerAPI or DockerPy) for every branch: the one engine all of them use,
    else `several`."""
    return kind() if recorded() == {DEFAULT} else several(kind)


def several(kind: Callable[..., Engine]) -> Several:
    """Every engine in use, now and as others are recorded (the proxy's, which outlives a listing)."""
    from dualgit.engine.several import Several

    return Several(recorded, lambda name: kind(find.chosen(name)), route)


def one(name: str, kind: Callable[..., Engine] = DockerAPI) -> Engine:
    """A client of `kind` for the engine the container `name` was made on."""
    return kind(find.chosen(state.engine_of(name)))


def likely(loc: Location, config: Config) -> str:
    """The engine's name the worktree's container is on, else the one it is to be made on."""
    return state.read_line(container_name(loc.common_dir, loc.worktree), "engine") or wanted(loc, config)


def serving(api: Engine, name: str) -> Engine:
    """A client for the engine `name`, of `api`'s kind: `api` itself when it is that engine."""
    from dualgit.engine.several import Several

    if isinstance(api, Several):
        return api.member(name)
    found = find.chosen(name)
    if (found or find.endpoint()).url() == api.endpoint.url():
        return api
    kind: Callable[..., Engine] = type(api)
    return kind(found) if found is not None else kind()


def settle(api: Engine, loc: Location, config: Config) -> Engine:
    """The engine the worktree's container is to be on, recorded, as a client of `api`'s kind: the
    one it is on when it has one, else the one the config wants."""
    from dualgit.worktrees.inventory import list_containers

    name = container_name(loc.common_dir, loc.worktree)
    want = wanted(loc, config)
    have = state.read_line(name, "engine")
    if (have or DEFAULT) != want:
        current = serving(api, have or DEFAULT)
        try:
            here = list_containers(current, loc.common_dir, loc.worktree)
        except DualgitError:
            if have is not None:
                raise DualgitError(f"{name} is on the engine {have}, which does not answer, and its config now names "
                                   f"{want}", hint=f"bring {have} back, or set the config's engine to {have} again") from None
            here = []
        if here:
            print(f"dualgit: {name} stays on the engine {have or DEFAULT}, though its config now names {want}: "
                  f"`git dual down --rm {loc.worktree}` and `git dual up` make it there (its volumes are not moved)",
                  file=sys.stderr)
            want = have or DEFAULT
        else:
            _left_behind(current, loc, have or DEFAULT)
    if have != want:
        state.write_line(name, "engine", want)
    return serving(api, want)


def _left_behind(old: Engine, loc: Location, named: str) -> None:
    """Said when a worktree moves to another engine: its volumes on the one it leaves stay there
    (a branch's data is never deleted by a move), with the command that removes them."""
    from dualgit.engine.api import ApiError

    try:
        volumes = sorted(v["Name"] for v in old.volumes({"label": [f"{labels.WORKTREE}={loc.worktree}"]})
                         if (v.get("Labels") or {}).get(labels.REPO) == loc.common_dir)
    except (ApiError, DualgitError):
        return
    if volumes:
        flag = "" if named == DEFAULT else f"-H {named} " if "://" in named else f"--context {named} "
        print(f"dualgit: {loc.worktree}: its volumes on the engine {named} stay there ({', '.join(volumes)}); "
              f"`docker {flag}volume rm {' '.join(volumes)}` removes them", file=sys.stderr)
