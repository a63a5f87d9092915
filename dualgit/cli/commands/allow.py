"""`git dual allow`: the user's yes, on the host, to what widens a worktree's container's reach."""

from __future__ import annotations

import json
import os

from dualgit.config import load
from dualgit.git import repository
from dualgit.worktrees import consent
from dualgit.worktrees.plan import container_settings, context_for


def allow(target: str | None = None, revoke: bool = False, as_json: bool = False) -> int:
    """No engine call: what the settings are is read from the worktree's files and the plugins."""
    repo = repository.open_repo(target if target and os.path.isdir(target) else None)
    wt = repository.find_worktree(repo, target or repo.workdir or ".")
    loc = wt.location
    if revoke:
        gone = consent.revoke(loc.common_dir)
        if as_json:
            print(json.dumps({"repo": loc.common_dir, "revoked": gone}))
        else:
            print(f"took back {gone} yes{'es' if gone != 1 else ''} given for {loc.common_dir}"
                  + (": `git dual up` makes its containers without them" if gone else ""))
        return 0
    config = load(loc.worktree)
    extra = container_settings(context_for(loc, None, config), config)
    wanted = consent.widening(extra, loc.worktree)
    if wanted:
        consent.allow(loc.common_dir, wanted)
    if as_json:
        print(json.dumps({"repo": loc.common_dir, "worktree": loc.worktree, "branch": wt.label,
                          "settings": wanted, "allowed": bool(wanted)}))
        return 0
    if not wanted:
        print(f"nothing to allow: {wt.label}'s container asks for nothing beyond its worktree")
        return 0
    print(f"allowed for {loc.common_dir}, while they stay exactly these:")
    for setting in wanted:
        print(f"  {setting}")
    print("`git dual up` makes the container anew with them; `git dual allow --revoke` takes the yes back")
    return 0
