"""`git dual inspect`: what a worktree's container is made from, read from its files and the plugins
alone, with no engine call, as plain data (the keys are the ones the README lists)."""

from __future__ import annotations

import os
from typing import Any

from dualgit.config import load
from dualgit.errors import DualgitError
from dualgit.git.locate import Location
from dualgit.hookspecs import ContainerSettings, Environment, Step
from dualgit.worktrees import consent
from dualgit.worktrees.features import FeatureBuild
from dualgit.worktrees.plan import container_settings, context_for, image_and_build, steps_for
from dualgit.worktrees.services import compose_services, services_for

SETUP_PLUGIN = "setup"  # .dual.toml's `setup`


def inspect(loc: Location) -> dict[str, Any]:
    from dualgit.plugins import plugins

    config = load(loc.worktree)
    ctx = context_for(loc, config=config)
    found = plugins()
    environments = [(name, e) for name, e in found.each("dualgit_environment", ctx=ctx) if isinstance(e, Environment)]
    environment = environments[0][1] if environments else None
    where = {name: e.source for name, e in environments}
    each = found.each("dualgit_container_settings", ctx=ctx)
    settings = container_settings(ctx, config, each)
    not_honoured = [{"key": key, "source": where.get(name, name), "why": why}
                    for name, extra in each if isinstance(extra, ContainerSettings) for key, why in extra.not_honoured]
    build: dict[str, Any] | None = environment.build if environment else None
    try:
        image: str | None
        image, made = image_and_build(ctx, config)
        base = made.base_build if isinstance(made, FeatureBuild) else made
        build = base.as_data() if base else build
    except DualgitError as exc:  # a build or compose that dualgit does not make: said, not guessed around
        image = None
        not_honoured.insert(0, {"key": "image", "source": environment.source if environment else ".dual.toml",
                                "why": exc.message})
    services: list[dict[str, Any]] = []
    try:
        described = [e for _name, e in environments]
        declared = services_for(ctx, config, described)
        for note in compose_services(ctx, config, described)[2]:
            at, _, why = note.partition(": ")
            not_honoured.append({"key": why.split("`")[1] if "`" in why else why, "source": at, "why": why})
        services = [{"name": s.name, "image": s.image, "build": s.build, "ports": list(s.ports),
                     "volumes": s.volumes, "seed": s.seed, "depends_on": s.depends_on, "source": s.at}
                    for s in declared]
    except DualgitError as exc:  # said once, where the image's error (the same compose file) said it already
        if not any(item["why"] == exc.message for item in not_honoured):
            not_honoured.append({"key": "services", "source": exc.message.split(":")[0], "why": exc.message})
    from dualgit.config.compose import unused_files

    for name in unused_files(loc.worktree, [*config.compose, *((environment.compose or {}).get("files") or []
                                                               if environment else [])]):
        not_honoured.append({"key": "compose", "source": name,
                             "why": f"{name} is not used unless opted in: `git dual config add compose {name}` runs "
                                    "its services in each branch"})
    wanted = consent.widening(settings, loc.worktree)
    held = [] if not wanted or consent.allowed(loc.common_dir, wanted) else wanted
    if held:
        settings = consent.held_back(settings, loc.worktree)
    sources = ([os.path.relpath(config.source, loc.worktree)] if config.source else []) + [e.source for _, e in environments]
    ports = [*config.ports, *(p for p in settings.ports if p not in config.ports)]
    return {
        "worktree": loc.worktree,
        "sources": sources,
        "image": image,
        "build": build,
        "features": environment.features if environment else [],
        "compose": environment.compose if environment else None,
        "env": settings.env,
        "mounts": _mounts(settings),
        "ports": {"http": ports, "tcp": list(config.tcp_ports)},
        "services": services,
        "user": settings.user,
        "workspace_folder": settings.workspace or loc.worktree,
        "steps": [_step(step) for step in steps_for(ctx)],
        "not_honoured": not_honoured,
        "needs_consent": [{"key": phrase, "source": environment.source if environment else "plugins"} for phrase in held],
    }


def _mounts(settings: ContainerSettings) -> list[dict[str, Any]]:
    found = [{"type": "bind", "source": host, "target": inside, "read_only": True} for host, inside in settings.mounts]
    found += [{"type": "bind", "source": host, "target": inside, "read_only": ro} for host, inside, ro in settings.binds]
    found += [{"type": "volume", "source": name, "target": inside, "read_only": False}
              for name, inside in settings.volumes.items()]
    return found


def _step(step: Step) -> dict[str, Any]:
    """A step as inspect says it: its source (devcontainer.json's key, `setup`, or a plugin's step),
    when it runs, and its command (null for a plugin's step that runs on the host)."""
    source, when = step.name, step.when
    if step.name.startswith("devcontainer "):
        source = step.name.split()[1]
    elif step.name.startswith("setup "):
        source = SETUP_PLUGIN
    return {"name": step.name, "source": source, "when": when,
            "command": step.command}
