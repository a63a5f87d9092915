"""What the PATH shims cost.

1. A routed `true` in a worktree against `docker exec C true`. Goal: at most 1.10x.
2. A shim outside any worktree against the real binary. Goal: at most 5 ms added.

    .venv/bin/python benchmarks/route.py [--rounds 30]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from _bench import ENV, cleanup, installed_copy, interleaved, new_repo, report, rounds_arg, sh, timed


def main() -> None:
    rounds = rounds_arg(30)
    repo = new_repo()
    installed = installed_copy()
    data = Path(tempfile.mkdtemp(prefix="dualgit-bench-shims-"))
    outside = Path(tempfile.mkdtemp(prefix="dualgit-bench-outside-"))
    env = {**ENV, "XDG_DATA_HOME": str(data), "DUALGIT_PROXY": "0"}
    try:
        (repo / ".dual.toml").write_text('image = "busybox:latest"\nroute = ["true"]\n')
        sh(str(installed / "git-dual"), "install", cwd=repo)
        sh(str(installed / "git-dual"), "up", cwd=repo)
        name = json.loads(sh("git", "dual", "ls", "--json", cwd=repo))[0]["container"]
        # shims that call the pip-installed copy, as a user's would
        import subprocess

        subprocess.run([str(installed / "git-dual"), "shell-init", "bash"], cwd=repo, env=env, check=True,
                       capture_output=True)
        shim = data / "dualgit" / "shims" / "true"
        assert shim.exists()
        os.environ.update(env)
        medians = interleaved({
            "docker exec C true": lambda: timed("docker", "exec", name, "true", cwd=repo),
            "routed true (shim, in the worktree)": lambda: timed(str(shim), cwd=repo),
        }, rounds)
        report(f"routed command, median of {rounds}", medians, "docker exec C true", goal=1.10)
        real = shutil.which("true", path="/usr/bin:/bin") or "/bin/true"
        medians = interleaved({
            f"{real}": lambda: timed(real, cwd=outside),
            "shim, outside any worktree": lambda: timed(str(shim), cwd=outside),
        }, rounds * 3)
        added = (medians["shim, outside any worktree"] - medians[real]) * 1000
        report(f"shim outside a worktree, median of {rounds * 3}", medians, real)
        print(f"  added: {added:.2f} ms (goal <= 5 ms: {'met' if added <= 5 else 'NOT met'})")
    finally:
        cleanup(repo)
        for folder in (data, outside, installed.parent):
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
