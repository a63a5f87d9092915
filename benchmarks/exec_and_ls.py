"""`git dual exec true` against `docker exec C true`, and `git dual ls` and `urls` with 50 worktrees
against the `docker ps` that lists their containers.

    .venv/bin/python benchmarks/exec_and_ls.py [--rounds 30] [--against REV]

With `--against REV`, a regular install of that commit is timed in the same run too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from _bench import ENV, args, checkout_of, cleanup, installed_copy, interleaved, new_repo, report, sh, timed

WORKTREES = 50


def main() -> None:
    given = args(30)
    rounds = given.rounds

    repo = new_repo()
    installed = installed_copy()
    earlier = checkout_of(given.against) if given.against else None
    before = installed_copy(earlier) if earlier else None
    regular = {**ENV, "PATH": f"{installed}{os.pathsep}{ENV['PATH']}"}  # `git dual` finds the installed copy
    try:
        sh("git", "dual", "up", cwd=repo)
        name = json.loads(sh("git", "dual", "ls", "--json", cwd=repo))[0]["container"]
        medians = interleaved(
            {
                "docker exec C true": lambda: timed("docker", "exec", name, "true", cwd=repo),
                "git-dual exec true (pip install)": lambda: timed(str(installed / "git-dual"), "exec", "true", cwd=repo),
                **({f"git-dual exec true ({given.against}, pip install)":
                    lambda: timed(str(before / "git-dual"), "exec", "true", cwd=repo)} if before else {}),
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
        if before is not None and earlier is not None:
            shutil.rmtree(before.parent, ignore_errors=True)
            subprocess.run(["git", "worktree", "remove", "--force", str(earlier)], cwd=Path(__file__).parent,
                           capture_output=True)


if __name__ == "__main__":
    main()
