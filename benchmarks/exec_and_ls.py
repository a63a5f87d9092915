"""`git dual exec true` against `docker exec C true`, and `git dual ls` with 20 worktrees.

    .venv/bin/python benchmarks/exec_and_ls.py [--rounds 30]
"""

from __future__ import annotations

import json
import shutil

from _bench import cleanup, installed_copy, interleaved, new_repo, report, rounds_arg, sh, timed


def main() -> None:
    rounds = rounds_arg(30)

    repo = new_repo()
    installed = installed_copy()
    try:
        sh("git", "dual", "up", cwd=repo)
        name = json.loads(sh("git", "dual", "ls", "--json", cwd=repo))[0]["container"]
        medians = interleaved(
            {
                "docker exec C true": lambda: timed("docker", "exec", name, "true", cwd=repo),
                "git-dual exec true (pip install)": lambda: timed(str(installed / "git-dual"), "exec", "true", cwd=repo),
                "git-dual exec true (editable dev install)": lambda: timed("git-dual", "exec", "true", cwd=repo),
                "git dual exec true (dev, through git)": lambda: timed("git", "dual", "exec", "true", cwd=repo),
            },
            rounds,
        )
        report(f"exec, median of {rounds} interleaved runs", medians, "docker exec C true", goal=1.10)

        for i in range(19):
            sh("git", "worktree", "add", "-q", f"../wt{i}", "-b", f"b{i}", cwd=repo)
            sh("git", "dual", "up", cwd=repo.parent / f"wt{i}")
        common = str((repo / ".git").resolve())
        medians = interleaved(
            {
                "docker ps -a --filter label (20 containers)": lambda: timed(
                    "docker", "ps", "-a", "--filter", f"label=dualgit.repo={common}", cwd=repo),
                "git dual ls (20 worktrees)": lambda: timed("git", "dual", "ls", cwd=repo),
                "git dual ls --json (20 worktrees)": lambda: timed("git", "dual", "ls", "--json", cwd=repo),
            },
            max(10, rounds // 2),
        )
        report("ls with 20 worktrees", medians, "docker ps -a --filter label (20 containers)")
    finally:
        cleanup(repo)
        shutil.rmtree(installed.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
