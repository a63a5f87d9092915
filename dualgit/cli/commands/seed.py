"""`git dual seed`: a branch's service volumes made anew as copies of another branch's."""

from __future__ import annotations

import json
import sys
from typing import Any

from dualgit.config import load
from dualgit.engine.dockerpy import DockerPy
from dualgit.errors import DualgitError
from dualgit.naming import repo_name
from dualgit.worktrees import engines, labels, services
from dualgit.worktrees import seed as seeding
from dualgit.worktrees.inventory import listed, remove_service
from dualgit.worktrees.plan import context_for, environments_for
from dualgit.worktrees.services import services_for
from dualgit.worktrees.targets import targeted


def seed(service: str | None = None, source: str | None = None, force: bool = False, target: str | None = None,
         as_json: bool = False) -> int:
    """Re-seed the branch's services that have volumes (or `service`) from `source` (else each one's
    `seed`). Without `force`, says what it would replace and changes nothing."""
    _repo, api, wt, mine = targeted(target, engines.client(DockerPy))
    if not mine:
        raise DualgitError(f"{wt.label} has no container, so no services", hint="`git dual up` makes them")
    loc, branch = wt.location, mine[0]
    ctx = context_for(loc, branch.name)
    declared = services_for(ctx, load(loc.worktree), environments_for(ctx))
    chosen = [s for s in declared if (s.name == service if service else s.volumes)]
    if service and not chosen:
        known = ", ".join(s.name for s in declared) or "none"
        raise DualgitError(f"{wt.label} has no service {service} (its services: {known})",
                           hint="`[services.NAME]` in .dual.toml declares one")
    if not chosen:
        raise DualgitError(f"{wt.label} has no service with volumes to seed", hint="give a service volumes = { ... }")
    plans = {p.service.name: p for p in services.plan_services(loc, branch.name, tuple(chosen), api, True,
                                                               repo_name(loc.common_dir))}
    have = {v["Name"]: v.get("Labels") or {} for v in api.volumes(labels.filters(loc.common_dir, loc.worktree))}
    report: list[dict[str, Any]] = []
    for wanted in chosen:
        origin = source or wanted.seed
        if not origin:
            raise DualgitError(f"service {wanted.name} has no `seed` branch", hint="name one: `git dual seed --from main`")
        if origin == wt.branch:
            raise DualgitError(f"{wt.label} cannot be seeded from itself", hint="name another branch: `--from main`")
        replaced = sorted(name for name, tags in have.items() if tags.get(labels.SERVICE) == wanted.name)
        report.append({"service": wanted.name, "from": origin, "replaces": replaced, "notes": []})
    if not force:
        for item in report:
            what = ", ".join(item["replaces"]) or "no volume yet"
            print(f"would replace service {item['service']}'s data ({what}) with a copy of {item['from']}'s",
                  file=sys.stderr)
        raise DualgitError(f"{wt.label}'s service data stays as it is without --force",
                           hint="`git dual seed --force` replaces it (the seed branch's data is only read)")
    for item in report:
        plan = plans[item["service"]]
        for found in listed(api, loc.common_dir, loc.worktree):
            if found.service == plan.service.name:
                remove_service(api, found)
        for volume in item["replaces"]:
            api.remove_volume(volume)
        made = services.ensure_volumes(api, loc, plan)
        item["notes"] = seeding.fill(api, loc, plan.service, plan.image_id, plan.name, made, item["from"])
        services.converge(api, loc, [plan], branch.id, lambda _step: None)
        if not as_json:
            print(f"{wt.label}: service {plan.service.name} seeded from {item['from']}")
            for note in item["notes"]:
                print(f"dualgit: {note}", file=sys.stderr)
    if as_json:
        print(json.dumps(report, indent=2))
    return 0
