"""What a second engine in use costs the branches on this machine's: `git dual exec true` in a local
branch, and `git dual ls`, with one engine in use, and with a branch of the same repository on the
tests' remote engine too (`tests/engines.RemoteEngine`, over ssh on loopback, named by a user's
`[[engines]]` rule). Each setting has its own state and config folders, so the rounds interleave.

    .venv/bin/python benchmarks/engines.py [--rounds 30]

Baseline: the same commands with one engine in use, in the same run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import ENV, cleanup, interleaved, new_repo, report, rounds_arg, timed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from engines import RemoteEngine  # noqa: E402 - the tests' remote machine


def setting(name: str, remote: RemoteEngine | None) -> tuple[Path, Path, dict[str, str]]:
    """A repository with a local branch `light`, and with `remote`, a branch `heavy/x` there; its
    own state and config folders. (the repository, its light worktree, the environment)"""
    home = Path(tempfile.mkdtemp(prefix=f"dualgit-bench-{name}-"))
    env = {**ENV, "XDG_STATE_HOME": str(home / "state"), "XDG_CONFIG_HOME": str(home / "config")}
    env.pop("DOCKER_HOST", None)
    if remote is not None:
        env["PATH"] = f"{remote.bin}{os.pathsep}{env['PATH']}"
        (home / "config" / "dualgit").mkdir(parents=True)
        (home / "config" / "dualgit" / "config.toml").write_text(
            f'[[engines]]\nbranch = "heavy/*"\nengine = "{remote.ssh_host}"\n')
    repo = new_repo(name)
    (repo / ".dual.toml").write_text('image = "busybox:latest"\n')
    for argv in (["git", "add", "-A"], ["git", "commit", "-qm", "config"], ["git", "dual", "install"]):
        subprocess.run(argv, cwd=repo, env=env, check=True, capture_output=True)
    branches = ["light"] + (["heavy/x"] if remote is not None else [])
    for branch in branches:
        tree = repo.parent / branch.replace("/", "-")
        subprocess.run(["git", "worktree", "add", "-q", str(tree), "-b", branch], cwd=repo, env=env, check=True,
                       capture_output=True)
        subprocess.run(["git", "dual", "exec", "true"], cwd=tree, env=env, check=True, capture_output=True)
    return repo, repo.parent / "light", env


def main() -> None:
    rounds = rounds_arg(30)
    remote = RemoteEngine(["busybox:latest"])
    made: list[tuple[Path, dict[str, str]]] = []
    try:
        one_repo, one_light, one = setting("one", None)
        made.append((one_repo, one))
        two_repo, two_light, two = setting("two", remote)
        made.append((two_repo, two))
        exec_medians = interleaved({
            "git dual exec true, a local branch; one engine in use": lambda: timed(
                "git", "dual", "exec", "true", cwd=one_light, env=one),
            "the same, another branch on a remote engine": lambda: timed(
                "git", "dual", "exec", "true", cwd=two_light, env=two),
        }, rounds)
        report("exec in a branch on this machine's engine", exec_medians,
               "git dual exec true, a local branch; one engine in use")
        ls_medians = interleaved({
            "git dual ls; one engine in use": lambda: timed("git", "dual", "ls", cwd=one_repo, env=one),
            "git dual ls; a branch on a remote engine too": lambda: timed("git", "dual", "ls", cwd=two_repo, env=two),
        }, rounds)
        report("ls of the repository", ls_medians, "git dual ls; one engine in use")
    finally:
        for repo, env in made:
            for tree in repo.parent.iterdir():
                if tree != repo and (tree / ".git").exists():
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo, env=env,
                                   capture_output=True)
            subprocess.run(["git", "dual", "gc"], cwd=repo, env=env, capture_output=True)
            subprocess.run(["pkill", "-f", f"sync-run.*{repo.parent}"], capture_output=True)
            cleanup(repo)
            shutil.rmtree(Path(env["XDG_STATE_HOME"]).parent, ignore_errors=True)
        remote.close()


if __name__ == "__main__":
    main()
