"""One container per worktree, brought to its plan (`plan.py`): made, adopted, made anew or started.

Labels are the only state: a container is found by `dualgit.repo` and `dualgit.worktree`, and
`dualgit.spec` says what it was made from, so `up` knows when to recreate it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from dualgit.config import Config, Limits, load
from dualgit.engine.api import ApiError, DockerAPI
from dualgit.errors import DualgitError
from dualgit.git.locate import Location, registered
from dualgit.worktrees import agent, engines, idle, labels, network, owner, state
from dualgit.worktrees.images import ImageNotHere
from dualgit.worktrees.inventory import Container, list_containers, remove
from dualgit.worktrees.plan import Plan, caps_text, plan, resources

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine

def apply_caps(api: Engine, container: Container, caps: Limits) -> None:
    """Bring a running container's caps to `caps`, live (`docker update`), when they changed since
    they were last applied; said on stderr when the engine will not."""
    wanted = caps_text(caps)
    before = state.applied_caps(container.name)
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
    state.record_caps(container.name, wanted)


def ensure_volumes(api: Engine, loc: Location, body: dict[str, Any]) -> None:
    """Create the container's named volumes with dualgit's labels (the engine would make them
    unlabelled), so that they go away with the worktree and nothing else."""
    for mount in body["HostConfig"]["Mounts"]:
        if mount["Type"] != "volume":
            continue
        api.create_volume(mount["Source"], {labels.REPO: loc.common_dir, labels.WORKTREE: loc.worktree})


def ensure_running(loc: Location, config: Config | None = None, api: Engine | None = None,
                   pull: bool = True, say: bool = False) -> Container:
    """Idempotent `up`: the worktree's plan, then its container brought to it (`converge`). Without
    `pull`, an image not on this machine raises ImageNotHere. What is held back or not honoured is
    said when the container is made, or with `say`."""
    if not registered(loc):
        raise gone_worktree(loc)
    config = config or load(loc.worktree)
    api = engines.settle(api or DockerAPI(), loc, config)  # the engine it is on, or is to be made on
    try:
        return converge(api, plan(loc, config, api, pull=False), say)
    except ImageNotHere as exc:
        current = list_containers(api, loc.common_dir, loc.worktree) if exc.step.startswith("build ") else []
        if current and _built_from(api, current[0]) == exc.step.removeprefix("build "):
            # the same Dockerfile's inputs changed: the container it has stays until `up --recreate`
            print(f"dualgit: {current[0].name}: its image is outdated: what it is built from changed "
                  f"({exc.step.removeprefix('build ')} and its context); `git dual up --recreate` rebuilds it",
                  file=sys.stderr)
            if current[0].state != "running":
                start(api, current[0])
                current = list_containers(api, loc.common_dir, loc.worktree)
            return current[0]
        if not pull:
            raise
    return converge(api, plan(loc, config, api, pull), say)


def _built_from(api: Engine, container: Container) -> str | None:
    """The Dockerfile (relative to the worktree) that the container's image was built from by dualgit."""
    from dualgit.worktrees.images import BUILD_LABEL

    try:
        found = (api.inspect_image(container.image_id).get("Config") or {}).get("Labels") or {}
    except ApiError:
        return None
    return found.get(BUILD_LABEL)


def converge(api: Engine, wanted: Plan, say: bool = False) -> Container:
    """Create the container, or start it, or make it anew when its spec changed (image, ports, env,
    mounts, plugin settings); a running one takes changed caps and `serve` live. Concurrent callers
    are settled by the engine's name conflict: the loser adopts the winner's container. A container
    made here starts its setup in the background."""
    loc, name = wanted.location, wanted.name
    if say:
        for line in wanted.notes:
            print(f"dualgit: {name}: {line}", file=sys.stderr)
    serve_changed = False
    if wanted.tools is not None:
        try:
            serve_changed = agent.write_serve(name, wanted.serve)
            agent.write(name, "start", wanted.start)
        except DualgitError as exc:
            print(f"dualgit: warning: {exc.message}", file=sys.stderr)
    state.write_line(name, "workspace", wanted.settings.workspace or "")  # where exec's folders are, inside
    made = False
    for _ in range(3):
        current = list_containers(api, loc.common_dir, loc.worktree)
        if current and current[0].spec != wanted.spec:
            remove(api, current[0], volumes=False)
            current = []
            if wanted.network not in (None, network.SHARED):  # a network of its own went with it
                network.network_for(api, name, loc.common_dir, loc.worktree)
        if current and current[0].state == "running":
            if serve_changed and not made:  # a running container: its `serve` takes the new command now
                agent.end_serve(api, name, current[0].id, sorted(wanted.serve), again=True)
            if not made:
                apply_caps(api, current[0], wanted.caps)
            return _after(api, loc, current[0], made, wanted)
        if current:
            apply_caps(api, current[0], wanted.caps)  # a stopped container takes an update too
            start(api, current[0])
        else:
            if not say:
                for line in wanted.notes:
                    print(f"dualgit: {name}: {line}", file=sys.stderr)
                say = True  # once
            ensure_volumes(api, loc, wanted.body)
            agent.setup_done(name, False)  # a new container: `serve` waits for its setup
            try:
                created = api.create_container(wanted.body, name)
            except ApiError as exc:
                if exc.status == 409:  # another dualgit run won the race: adopt its container
                    _check_name_is_ours(api, name, loc.common_dir)
                    continue
                raise DualgitError(f"cannot create container {name}: {exc.message}")
            made = True
            state.record_caps(name, caps_text(wanted.caps))
            start(api, Container(created, name, "created", loc.common_dir, loc.worktree, loc.gitdir, "", "", {}))
            if wanted.remap:
                try:
                    owner.prepare(api, created, wanted.settings.user)
                except DualgitError:
                    remove(api, Container(created, name, "running", loc.common_dir, loc.worktree, loc.gitdir,
                                          "", ""), volumes=False)  # made anew by the next try
                    raise
        found = list_containers(api, loc.common_dir, loc.worktree)
        if found and found[0].state == "running":
            return _after(api, loc, found[0], made, wanted)
    raise DualgitError(f"container {name} kept changing while dualgit brought it up", hint="run `git dual up` again")


def gone_worktree(loc: Location) -> DualgitError:
    return DualgitError(f"{loc.worktree} is no longer a worktree git knows (removed meanwhile?)",
                        hint="`git worktree list` shows the worktrees; `git worktree add` makes one anew")


def _after(api: Engine, loc: Location, container: Container, made: bool, wanted: Plan) -> Container:
    from dualgit.worktrees import setup_state

    if not registered(loc):  # removed while we made it: reconcile wins, the container goes too
        remove(api, container, volumes=True)
        raise gone_worktree(loc)
    if wanted.synced:  # before setup, which waits for the first sync
        from dualgit.worktrees import sync

        sync.start(loc, container.name)
    if made:
        setup_state.start_background(loc, container.name, container.id)
    elif wanted.services and setup_state.read(container.name).status != "running":  # else its runner does it
        from dualgit.worktrees import services

        for line in services.bring_up(api, loc, wanted.services, container.id, lambda _step: None, wait=False):
            print(f"dualgit: {container.name}: {line}", file=sys.stderr)
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


def _services_back(api: Engine, container: Container, seconds: float = 30.0) -> None:
    """A woken branch's services started after it (their namespace), and waited for: each port of
    theirs listening inside (what the next exec or request finds), or a word on stderr."""
    import time

    from dualgit.worktrees.inventory import service_ports, start_services

    start_services(api, container.repo, container.worktree)
    ports, until = service_ports(container), time.monotonic() + seconds
    while ports and not all(p in agent.listening(container.name) for p in ports):
        if time.monotonic() > until:
            print(f"dualgit: warning: {container.name}'s services do not listen on {ports} yet "
                  "(`git dual logs --service NAME` shows why)", file=sys.stderr)
            return
        time.sleep(0.05)


def start(api: Engine, container: Container) -> None:
    message = ""
    for attempt in range(4):
        try:
            if container.services:
                agent.write(container.name, "listen", None)  # what listened before: the wait is for the agent's new word
            api.start(container.id)
            idle.woke(container.name)
            if container.services:
                _services_back(api, container)
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
        if container.services:
            _services_back(api, container)
        return
    raise DualgitError(
        f"container {container.name} for {container.worktree} does not start: {message}",
        hint=f"see `docker logs {container.name}`; `git dual up --recreate` makes it anew",
    )
