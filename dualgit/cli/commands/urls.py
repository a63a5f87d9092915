"""`git dual urls`: every branch's URLs, from the engine's list call and the worktrees' HEADs."""

from __future__ import annotations

import json

from dualgit.proxy import daemon, hosts
from dualgit.worktrees import agent, engines
from dualgit.worktrees.inventory import list_all
from dualgit.worktrees.targets import listing


def urls(as_json: bool = False) -> int:
    api = engines.client()
    every = list_all(api)  # the one list call: this repository's, and the others' that names avoid
    repo, _api, mine, trees = listing(listed=every, api=api)
    others = [c for c in every if c.repo != repo.common_dir]
    branches = {**hosts.branches_of(others), **{wt.path: wt.branch for wt in trees}}  # ours as read once
    rows = hosts.build(others + mine, branches).urls(repo.common_dir)
    if rows:
        daemon.ensure_started(api.endpoint.url())  # URLs that answer: after a reboot, the proxy is not back on its own
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no container yet: `git dual up` makes this worktree's")
    width = max((len(str(r["branch"])) for r in rows), default=0)
    for row in rows:
        print(f"{str(row['branch']).ljust(width)}  {row['url']}" + (f"  ({row['label']})" if row.get("label") else ""))
    labels = {wt.path: wt.label for wt in trees}
    for container in mine:  # a server with no URL: said here, from the agent's files (no engine call)
        seen = agent.seen(container.name, container.http_ports, container.tcp_ports)
        for port in seen["undeclared"]:
            print(f"{labels.get(container.worktree, container.worktree)}: something listens on :{port} inside, with "
                  f"no URL: `{seen['declare'][str(port)]}`, then `git dual up`")
    return 0
