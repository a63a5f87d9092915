"""`git dual exec true` against `docker exec C true`, and `git dual ls` and `urls` with 50 worktrees
against the `docker ps` that lists their containers.

    .venv/bin/python benchmarks/exec_and_ls.py [--rounds 30]
"""

from __future__ import annotations

import json
import os
import shutil

from _bench import ENV, cleanup, installed_copy, interleaved, new_repo, report, rounds_arg, sh, timed

WORKTREES = 50


def main() -> None:
    rounds = rounds_arg(30)

    repo = new_repo()
    installed = installed_copy()
    regular = {**ENV, "PATH": f"{installed}{os.pathsep}{ENV['PATH']}"}  # `git dual` finds the installed copy
    try:
        sh("git", "dual", "up", cwd=repo)
        name = json.loads(sh("git", "dual", "ls", "--json", cwd=repo))[0]["container"]
        medians = interleaved(
            {
                "docker exec C true": lambda: timed("docker", "exec", name, "true", cwd=repo),
                "git-dual exec true (pip install)": lambda: timed(str(installed / "git-dual"), "exec", "true", cwd=repo),
                "git dual exec true (pip install, through git)": lambda: timed("git", "dual", "exec", "true", cwd=repo,
                                                                               env=regular),
                "git-dual exec true (editable dev install)": lambda: timed("git-dual", "exec", "true", cwd=repo),
                "git dual exec true (dev, through git)": lambda: timed("git", "dual", "exec", "true", cwd=repo),
            },
            rounds,
        )
        report(f"exec, median of {rounds} interleaved runs", medians, "docker exec C true", goal=1.10)

        for i in range(WORKTREES - 1):
            sh("git", "worktree", "add", "-q", f"../wt{i}", "-b", f"b{i}", cwd=repo)
            sh("git", "dual", "up", cwd=repo.parent / f"wt{i}")
        common = str((repo / ".git").resolve())
        baseline = f"docker ps -a --filter label ({WORKTREES} containers)"
        medians = interleaved(
            {
                baseline: lambda: timed("docker", "ps", "-a", "--filter", f"label=dualgit.repo={common}", cwd=repo),
                "git dual ls (pip install)": lambda: timed("git", "dual", "ls", cwd=repo, env=regular),
                "git dual ls --json (pip install)": lambda: timed("git", "dual", "ls", "--json", cwd=repo, env=regular),
                "git dual urls (pip install)": lambda: timed("git", "dual", "urls", cwd=repo, env=regular),
                "git dual ls (editable dev install)": lambda: timed("git", "dual", "ls", cwd=repo),
            },
            max(10, rounds // 2),
        )
        report(f"ls and urls with {WORKTREES} worktrees", medians, baseline, goal=3.0)
    finally:
        cleanup(repo)
        shutil.rmtree(installed.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
