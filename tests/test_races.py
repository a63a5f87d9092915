"""Commands racing each other on the same containers: every removal is idempotent, so `ls`, `urls`,
`gc` and `exec` running in loops while worktrees go (and the proxy's watcher removes their
containers) all exit 0 and say nothing of work another process did."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

from conftest import add_worktree, dual, git
from dualgit.engine.api import DockerAPI
from tests_support import wait_for

TREES = 12
REMOVED = 6


def containers_of(api: DockerAPI, repo: Path) -> dict[str, str]:
    query = json.dumps({"label": [f"dualgit.repo={(repo / '.git').resolve()}"]})
    return {c["Labels"]["dualgit.worktree"]: c["Id"] for c in api.get("/containers/json", {"all": 1, "filters": query})}


def test_removals_race_ls_urls_gc_exec_and_the_watcher(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    trees = [add_worktree(repo, f"demo-{i}", f"feat/{i}") for i in range(TREES)]
    state = {"XDG_STATE_HOME": str(tmp_path / "state")}  # the containers', and so the proxy's to serve
    for tree in [repo, *trees]:
        assert dual("up", cwd=tree, env=state).returncode == 0
    assert dual("proxy", "start", cwd=repo, env=state).returncode == 0  # its watcher removes containers too
    done = threading.Event()
    problems: list[str] = []
    runs: dict[str, int] = {}

    def loop(name: str, args: list[str], cwd: Path) -> None:
        while not done.is_set():
            result = dual(*args, cwd=cwd, env=state)
            runs[name] = runs.get(name, 0) + 1
            said = (result.stderr + result.stdout).lower()
            if result.returncode != 0 or "error" in said or "traceback" in said:
                problems.append(f"{name} exited {result.returncode}: {result.stderr.strip() or result.stdout.strip()}")

    loops = [threading.Thread(target=loop, args=(name, args, repo if name != "exec" else trees[-1]))
             for name, args in (("ls", ["ls"]), ("urls", ["urls"]), ("gc", ["gc"]), ("exec", ["exec", "true"]))]
    try:
        for thread in loops:
            thread.start()
        for tree in trees[:REMOVED]:
            time.sleep(0.4)  # the loops, the watcher and the removals overlap
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo, check=True)
        time.sleep(1.0)
    finally:
        done.set()
        for thread in loops:
            thread.join(timeout=120)
        dual("proxy", "stop", cwd=repo, env=state)
    assert problems == [], problems
    assert all(runs.get(name, 0) >= 2 for name in ("ls", "urls", "gc", "exec")), runs
    left = {str(repo), *map(str, trees[REMOVED:])}
    assert wait_for(lambda: set(containers_of(docker, repo)) == left, timeout=10)
    assert {line.split()[0] for line in git("worktree", "list", cwd=repo).splitlines()} == left


def test_an_exec_never_brings_back_the_container_of_a_removed_worktree(repo: Path, docker: DockerAPI) -> None:
    """A worktree whose folder is gone and git forgot: exec (or the hook) makes nothing for it."""
    from dualgit.errors import DualgitError
    from dualgit.git.locate import locate
    from dualgit.worktrees.containers import ensure_running

    feat = add_worktree(repo, "demo-gone", "feat/gone")
    loc = locate(str(feat))
    git("worktree", "remove", "--force", str(feat), cwd=repo)
    try:
        ensure_running(loc)
    except DualgitError as exc:
        assert "no longer a worktree git knows" in exc.message
    else:
        raise AssertionError("a container was made for a worktree git no longer knows")
    assert str(feat) not in containers_of(docker, repo) and not feat.exists()
