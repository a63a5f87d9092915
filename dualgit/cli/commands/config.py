"""`git dual config`: read and edit `.dual.toml` (or, with --global, the user-wide config.toml) the
way `git config` reads and edits git's files. No engine call."""

from __future__ import annotations

import json
import os
from typing import Any

from dualgit.config import edit
from dualgit.errors import DualgitError
from dualgit.git import repository


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def config(action: str, key: str, value: str | None = None, user_wide: bool = False, as_json: bool = False,
           target: str | None = None) -> int:
    if action not in edit.ACTIONS:
        raise DualgitError(f"no action {action!r}", hint=f"one of: {', '.join(edit.ACTIONS)} (`git dual config -h`)")
    worktree = ""
    if not user_wide:
        repo = repository.open_repo(target if target and os.path.isdir(target) else None)
        worktree = repository.find_worktree(repo, target or repo.workdir or ".").path
    file = edit.file_for(worktree, user_wide)
    if action == "get":
        if value is not None:
            raise DualgitError(f"`git dual config get {key}` takes no value", hint=f"`git dual config set {key} {value}`")
        found = edit.get(file, key)
        print(json.dumps({"file": file, "key": key, "value": found}) if as_json else _shown(found))
        return 0
    from dualgit.plugins import plugins

    now, changed = edit.change(file, action, key, value, plugins().config_keys() if not user_wide else {})
    if as_json:
        print(json.dumps({"file": file, "key": key, "value": now, "changed": changed}))
    elif not changed:
        print(f"{file}: {key} was already so")
    return 0
