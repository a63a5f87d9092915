"""`git dual inspect`: what a worktree's container is made from, with no engine call."""

from __future__ import annotations

import json
import os

from dualgit.git import repository
from dualgit.worktrees.inspection import inspect as read


def inspect(target: str | None, as_json: bool = False) -> int:
    repo = repository.open_repo(target if target and os.path.isdir(target) else None)
    wt = repository.find_worktree(repo, target or repo.workdir or ".")
    found = read(wt.location)
    if as_json:
        print(json.dumps(found, indent=2))
        return 0
    build, compose = found["build"], found["compose"]
    print(f"{wt.label}: {wt.path}")
    print(f"  from:      {', '.join(found['sources']) or 'defaults (no .dual.toml, no devcontainer.json)'}")
    print(f"  image:     {found['image'] or '-'}")
    if build:
        print(f"  build:     {build['dockerfile']} in {build['context']}" + (f", target {build['target']}" if build["target"]
                                                                               else ""))
    if compose:
        print(f"  compose:   {', '.join(compose['files'])}, service {compose['service']}")
    for feature in found["features"]:
        print(f"  feature:   {feature['id']} {json.dumps(feature['options']) if feature['options'] else ''}".rstrip())
    print(f"  ports:     {' '.join(map(str, found['ports']['http'])) or '-'}"
          + (f" (tcp {' '.join(map(str, found['ports']['tcp']))})" if found["ports"]["tcp"] else ""))
    for service in found["services"]:
        made = service["image"] or f"build {service['build']['dockerfile']}"
        extra = "".join([f", :{' :'.join(map(str, service['ports']))}" if service["ports"] else "",
                         f", seeded from {service['seed']}" if service["seed"] else ""])
        print(f"  service:   {service['name']} ({made}{extra})")
    user = found["user"] or "(the image's, remapped to the worktree's owner)"
    print(f"  user:      {user}")
    print(f"  workspace: {found['workspace_folder']}")
    for key, value in found["env"].items():
        print(f"  env:       {key}={value}")
    for mount in found["mounts"]:
        print(f"  mount:     {mount['source']} -> {mount['target']}" + (" (read-only)" if mount["read_only"] else ""))
    for step in found["steps"]:
        command = step["command"] if isinstance(step["command"], str) or step["command"] is None else json.dumps(step["command"])
        print(f"  step:      [{step['when']}] {step['name']}" + (f": {command}" if command and command not in step["name"]
                                                                     else ""))
    for item in found["not_honoured"]:
        print(f"  not honoured: {item['key']} ({item['source']}): {item['why']}")
    for item in found["needs_consent"]:
        print(f"  needs `git dual allow`: {item['key']} ({item['source']})")
    return 0
