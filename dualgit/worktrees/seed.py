"""A new branch's service volumes start as copies of another branch's (`seed = "main"`).

The copy is crash-consistent: the source service is paused (the engine's cgroup freezer) while
its volumes are copied, so a database finds what it would after a crash, and recovers as it does
then. The copy runs in a short-lived helper container made from the service's own image (its
`cp`), with the source mounted read-only: GNU cp's `--reflink=auto` makes copy-on-write clones
where the engine's filesystem has them (btrfs, XFS), else a plain copy. The seed branch's data is
only ever read.
"""

from __future__ import annotations

import os
import shlex
import time
from typing import TYPE_CHECKING

from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError
from dualgit.worktrees import labels

if TYPE_CHECKING:
    from dualgit.config.services import Service
    from dualgit.engine.interface import Engine
    from dualgit.git.locate import Location

# GNU cp clones where it can; busybox's cp (an Alpine image) has no --reflink, and copies.
COPY = "cp -a --reflink=auto /from/{k}/. /to/{k}/ 2>/dev/null || cp -a /from/{k}/. /to/{k}/"


def source_worktree(loc: Location, branch: str) -> str | None:
    """The worktree that has `branch` checked out, if any."""
    from dualgit.git import repository

    for tree in repository.worktrees(repository.open_repo(loc.worktree)):
        if tree.branch == branch:
            return tree.path
    return None


def fill(api: Engine, loc: Location, service: Service, image: str, name: str, made: list[tuple[str, str, str]],
         source_branch: str | None = None) -> list[str]:
    """Copy the seed branch's volumes into the volumes `made` just now for `service` (its container
    `name`, made from `image`); the lines that say why a volume starts empty instead."""
    from dualgit.git.locate import read_head

    branch = source_branch or service.seed
    if branch is None:
        return []
    here = read_head(loc.gitdir)[0]
    if branch == here:
        if source_branch is not None:
            raise DualgitError(f"{branch} cannot be seeded from itself",
                               hint="name another branch: `git dual seed --from main`")
        main = os.path.basename(loc.gitdir.rstrip("/")) == ".git"
        bare = os.path.basename(loc.common_dir.rstrip("/")) != ".git"
        if main or bare:  # the seed branch's own worktree: where the others' data comes from
            return []
        raise DualgitError(f"{service.seed_at}: service {service.name} of branch {branch} is seeded from {branch} "
                           "itself", hint='seed it from another branch, such as seed = "main"')
    source = source_worktree(loc, branch)
    if source is None:
        return [f"service {service.name}: the seed branch {branch} has no worktree here; it starts empty"]
    found = {v.get("Labels", {}).get(labels.VOLUME): v["Name"] for v in api.volumes(
        {"label": [f"{labels.REPO}={loc.common_dir}", f"{labels.WORKTREE}={source}", f"{labels.SERVICE}={service.name}"]})
        if labels.owned(v.get("Labels"), loc.common_dir)}
    pairs = [(found[key], volume, key) for volume, key, _target in made if key in found]
    notes = [f"service {service.name}: the seed branch {branch} has no volume {key}; it starts empty"
             for _volume, key, _target in made if key not in found]
    if not pairs:
        return notes
    from dualgit.worktrees.inventory import container_for, listed

    running = [r for r in listed(api, loc.common_dir, source) if r.service == service.name and r.state == "running"]
    paused = []
    began = time.monotonic()
    try:
        for found_one in running:
            api.pause(found_one.id)
            paused.append(found_one.id)
        copy(api, loc, image, pairs, container_for(name, "seed"))
    finally:
        for container in paused:
            try:
                api.unpause(container)
            except ApiError:
                pass  # removed meanwhile
    frozen = f", {branch}'s paused meanwhile" if paused else ""
    return [*notes, f"service {service.name}: seeded from {branch} in {time.monotonic() - began:.1f}s{frozen}"]


def copy(api: Engine, loc: Location, image: str, pairs: list[tuple[str, str, str]], name: str) -> None:
    """Copy each (source volume, target volume, key) in one helper container, and remove it."""
    script = " && ".join(COPY.format(k=shlex.quote(key)) for _s, _t, key in pairs)
    body = {
        "Image": image, "Entrypoint": ["sh", "-c", script], "Cmd": [], "User": "0",
        "HostConfig": {"NetworkMode": "none", "Mounts": [
            *({"Type": "volume", "Source": s, "Target": f"/from/{key}", "ReadOnly": True} for s, _t, key in pairs),
            *({"Type": "volume", "Source": t, "Target": f"/to/{key}"} for _s, t, key in pairs)]},
        "Labels": {labels.REPO: loc.common_dir, labels.HELPER: "seed"},
    }
    try:  # a helper left by a run that died: removed when it is ours
        left = api.inspect_container(name)
        if labels.owned((left.get("Config") or {}).get("Labels"), loc.common_dir):
            api.remove_container(name)
    except ApiError:
        pass
    try:
        helper = api.create_container(body, name)
    except ApiError as exc:
        raise DualgitError(f"cannot make the seed's helper container {name}: {exc.message}") from None
    try:
        api.start(helper)
        code = api.wait(helper)
        if code != 0:
            from dualgit.worktrees.inventory import logs_tail

            raise DualgitError(f"copying the seed's volumes failed (exit {code}): {logs_tail(api, helper)}",
                               hint="`git dual seed --force` tries again")
    finally:
        try:
            api.remove_container(helper)
        except ApiError:
            pass
