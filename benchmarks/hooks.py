"""What the hooks cost git.

1. A branch switch (`git checkout A && git checkout B`) with dualgit's hooks against the same
   switch with a post-checkout hook that only runs `exit 0` (any hook's floor), and without hooks.
   Goal: at most 1.10x the `exit 0` hook (the hook script exits before Python).
2. `git worktree add` with the hook (copying a `[shared]` file too, with `serve`, `idle_after` and
   caps set) against `git worktree add` then `docker run -d` of the same image. Goal: at most 1.30x.
   Also with an image from a build (`build = "Dockerfile"`, 200 files in its context, built once):
   the hook hashes the inputs, finds the image, and builds nothing.
   Also printed: that `docker run -d` on dualgit's own network (inter-container traffic off), which
   each branch's container joins, for what the engine's start there costs by itself.

    .venv/bin/python benchmarks/hooks.py [--rounds 20]
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _bench import cleanup, installed_copy, interleaved, new_repo, report, rounds_arg, sh, timed


def two_branches(repo: Path) -> None:
    """Branches a and b of a 2,000-file tree, 200 files apart: a checkout that has work to do."""
    for d in range(20):
        folder = repo / f"pkg{d}"
        folder.mkdir()
        for f in range(100):
            (folder / f"mod{f}.py").write_text(f"VALUE = {d * 100 + f}\n" * 20)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "tree", cwd=repo)
    sh("git", "branch", "a", cwd=repo)
    sh("git", "checkout", "-q", "-b", "b", cwd=repo)
    for d in range(2):
        for f in range(100):
            (repo / f"pkg{d}" / f"mod{f}.py").write_text("VALUE = 'b'\n" * 20)
    sh("git", "commit", "-q", "-am", "b", cwd=repo)


def main() -> None:
    rounds = rounds_arg(20)

    plain, hooked, built = new_repo("plain"), new_repo("hooked"), new_repo("built")
    big = new_repo("big")
    no_hooks = Path(tempfile.mkdtemp(prefix="dualgit-bench-nohooks-"))
    exit_0 = Path(tempfile.mkdtemp(prefix="dualgit-bench-exit0-"))
    (exit_0 / "post-checkout").write_text("#!/bin/sh\nexit 0\n")
    (exit_0 / "post-checkout").chmod(0o755)
    installed = installed_copy()  # the hooks run the regular install's Python, as `pip install dualgit` gives
    try:
        # The hook copies .env to each new worktree; serve, the idle policy and caps are on, as users have them.
        (hooked / ".dual.toml").write_text('image = "busybox:latest"\nserve = "httpd -f -p $PORT"\nidle_after = "30m"\n'
                                           'memory = "256m"\ncpus = 1\n[shared]\nfiles = [".env"]\n')
        (hooked / ".env").write_text("SECRET=1\n")
        sh("git", "add", ".dual.toml", cwd=hooked)
        sh("git", "commit", "-q", "-m", "shared", cwd=hooked)
        # A build: a Dockerfile whose context is the worktree (200 files, hashed on each add), built once.
        (built / ".dual.toml").write_text('build = "Dockerfile"\n')
        (built / "Dockerfile").write_text("FROM busybox:latest\nCOPY src /src\n")
        (built / "src").mkdir()
        for f in range(200):
            (built / "src" / f"mod{f}.py").write_text(f"VALUE = {f}\n" * 50)
        sh("git", "add", "-A", cwd=built)
        sh("git", "commit", "-q", "-m", "build", cwd=built)
        for repo in (hooked, big, built):
            sh(str(installed / "git-dual"), "install", cwd=repo)
        sh(str(installed / "git-dual"), "up", cwd=built)  # builds the image the new worktrees then share
        sh("git", "branch", "a", cwd=hooked)
        sh("git", "branch", "b", cwd=hooked)
        two_branches(big)

        # One repository, the same checkouts, with dualgit's hooks, with a hooks dir whose
        # post-checkout only runs `exit 0`, and with an empty one: only the hook differs.
        def switch(repo: Path, hooks: Path | None) -> float:
            flag = f"-c core.hooksPath={hooks} " if hooks is not None else ""
            return timed("sh", "-c", f"git {flag}checkout -q a && git {flag}checkout -q b", cwd=repo)

        for title, repo in (("a one-file repository", hooked), ("2,000 files, 200 differing between the branches", big)):
            floor = "switch, a post-checkout hook that runs `exit 0`"
            medians = interleaved({floor: lambda r=repo: switch(r, exit_0),  # type: ignore[misc]
                                   "switch, no hooks": lambda r=repo: switch(r, no_hooks),  # type: ignore[misc]
                                   "switch, dualgit hooks": lambda r=repo: switch(r, None)}, rounds * 2)  # type: ignore[misc]
            report(f"branch switch (checkout a && checkout b), {title}, median of {rounds * 2}", medians, floor,
                   goal=1.10)

        counter = itertools.count()
        run_ids: list[str] = []

        def add_then_run(*network: str, repo: Path = plain, image: str = "busybox:latest") -> float:
            i = next(counter)
            started = time.perf_counter()
            sh("git", "-c", f"core.hooksPath={no_hooks}", "worktree", "add", "-q", f"../p{i}", "-b", f"p{i}", cwd=repo)
            run_ids.append(sh("docker", "run", "-d", "--init", *network, "-p", "127.0.0.1::3000", "--label",
                              "dualgit-bench=1", image, "tail", "-f", "/dev/null", cwd=repo).strip())
            return time.perf_counter() - started

        def add_with_hook() -> float:
            i = next(counter)
            return timed("git", "worktree", "add", "-q", f"../h{i}", "-b", f"h{i}", cwd=hooked)

        def add_with_build() -> float:
            i = next(counter)
            return timed("git", "worktree", "add", "-q", f"../b{i}", "-b", f"b{i}", cwd=built)

        # the same, joining dualgit's network, where branches can't reach each other (made by the hook's
        # warm-up): what starting a container there costs the engine, apart from dualgit
        medians = interleaved({"git worktree add + docker run -d": add_then_run,
                               "git worktree add + docker run -d --network dualgit":
                                   lambda: add_then_run("--network", "dualgit"),
                               "git worktree add, dualgit hook": add_with_hook}, rounds, warmup=2)
        report(f"new worktree with a running container, median of {rounds}", medians,
               "git worktree add + docker run -d", goal=1.30)
        built_image = sh("docker", "images", "-q", "--filter", "label=dualgit.build", cwd=built).split()[0]
        medians = interleaved({"git worktree add + docker run -d of the built image":
                                   lambda: add_then_run(repo=built, image=built_image),
                               "git worktree add, dualgit hook (hashes the build's inputs, finds the image)":
                                   add_with_build}, rounds, warmup=2)
        report(f"new worktree of a repository whose image is built (200 files in its context), median of {rounds}",
               medians, "git worktree add + docker run -d of the built image", goal=1.30)
        if run_ids:
            sh("docker", "rm", "-f", *run_ids, cwd=plain)
    finally:
        for repo in (hooked, plain, big, built):
            cleanup(repo)
        subprocess.run("docker images -q --filter label=dualgit.build | xargs -r docker rmi -f", shell=True,
                       capture_output=True)
        no_hooks.rmdir()
        shutil.rmtree(installed.parent, ignore_errors=True)
        shutil.rmtree(exit_0, ignore_errors=True)


if __name__ == "__main__":
    main()
