"""The paths a user waits on import what they need and nothing heavy: `git dual exec`, a PATH shim's
routed command, the post-checkout hook, and `ls` and `urls` as agents call them. Python's own
import log (-X importtime) says what each imported; a heavy import there fails here, so the code
can stay plain without comments defending it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import dual, git
from dualgit.engine.api import DockerAPI

HEAVY = {"typer", "click", "pygit2", "docker", "tomlkit", "pluggy", "asyncio", "requests", "urllib3", "uvloop",
         "httptools", "rich", "shellingham"}
# Standard modules that cost a share of a whole exec: exec and a routed command do without them
# (json, socket and ssl are fine). The hook reads .dual.toml and loads plugins, which use them.
SLOW_STDLIB = {"typing", "dataclasses", "inspect", "hashlib", "email", "zipfile", "tomllib"}  # email: importlib.metadata
HOOK_NEEDS = {"pluggy"}  # the hook asks the plugins for the image and settings


def imported(stderr: str) -> set[str]:
    """Top-level packages named in -X importtime's lines (`import time: self | cumulative | name`)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_exec_a_shim_and_the_hook_import_nothing_heavy(repo: Path, docker: DockerAPI) -> None:
    assert dual("install", cwd=repo).returncode == 0 and dual("up", cwd=repo).returncode == 0
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    ran = subprocess.run(["git", "dual", "exec", "true"], cwd=repo, env=env, capture_output=True, text=True)
    assert ran.returncode == 0
    assert "dualgit" in imported(ran.stderr)  # the log is there: the check below cannot pass on an empty one
    assert imported(ran.stderr) & (HEAVY | SLOW_STDLIB) == set(), "git dual exec"
    routed = subprocess.run([sys.executable, "-m", "dualgit", "route", "true", str(repo)], cwd=repo, env=env,
                            capture_output=True, text=True)
    assert routed.returncode == 0 and "dualgit" in imported(routed.stderr)
    assert imported(routed.stderr) & (HEAVY | SLOW_STDLIB) == set(), "a routed command"
    added = subprocess.run(["git", "worktree", "add", "-q", "../demo-lean", "-b", "lean"], cwd=repo, env=env,
                           capture_output=True, text=True)
    assert added.returncode == 0 and "dualgit" in imported(added.stderr) and "-> container" in added.stderr
    assert imported(added.stderr) & (HEAVY - HOOK_NEEDS) == set(), "the post-checkout hook"
    assert "lean" in git("branch", "--list", "lean", cwd=repo)
    for command in (["ls"], ["ls", "--json"], ["urls"]):  # what agents call over and over
        listed = subprocess.run(["git", "dual", *command], cwd=repo, env=env, capture_output=True, text=True)
        assert listed.returncode == 0 and "dualgit" in imported(listed.stderr), command
        assert imported(listed.stderr) & HEAVY == set(), command
