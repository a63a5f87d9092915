"""Shared by the benchmarks: a throwaway repository, interleaved rounds, medians and ratios."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
ENV = {
    # as on a user's machine, Python keeps its compiled modules (a sandbox may say not to: then every
    # start of an editable install compiles each module it imports again)
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "DUALGIT_PROXY": "0",  # measure the commands alone, and leave no proxy behind
}


def rounds_arg(default: int) -> int:
    """`--rounds N` from the command line."""
    return int(args(default).rounds)


def args(rounds: int) -> Any:
    """`--rounds N`, and `--against REV`: a commit whose regular install is timed in the same run,
    for "no slower than before this change"."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--against", default=None, help="a git revision to time beside this checkout")
    return parser.parse_args()


def checkout_of(rev: str) -> Path:
    """A detached worktree of `rev` of this repository, in a temporary folder (remove it with
    `git worktree remove --force`)."""
    root = Path(__file__).resolve().parent.parent
    target = Path(tempfile.mkdtemp(prefix="dualgit-bench-rev-")) / "tree"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(target), rev], cwd=root, check=True)
    return target


def sh(*args: str, cwd: Path | str, check: bool = True) -> str:
    return subprocess.run(args, cwd=cwd, env=ENV, check=check, capture_output=True, text=True).stdout


def timed(*args: str, cwd: Path | str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env or ENV, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def new_repo(name: str = "bench") -> Path:
    root = Path(tempfile.mkdtemp(prefix="dualgit-bench-"))
    repo = root / name
    repo.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    (repo / "README").write_text("bench\n")
    sh("git", "add", "README", cwd=repo)
    sh("git", "commit", "-q", "-m", "init", cwd=repo)
    return repo


def interleaved(cases: dict[str, Callable[[], float]], rounds: int, warmup: int = 3) -> dict[str, float]:
    """Median seconds per case, the cases taking turns so that drift hits them alike."""
    for _ in range(warmup):
        for run in cases.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            samples[name].append(run())
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, medians: dict[str, float], baseline: str, goal: float | None = None) -> None:
    print(f"\n{title}")
    base = medians[baseline]
    for name, value in medians.items():
        ratio = value / base
        mark = ""
        if goal is not None and name != baseline:
            mark = f"  (goal <= {goal:.2f}x: {'met' if ratio <= goal else 'NOT met'})"
        print(f"  {name:<48} {value * 1000:8.1f} ms  {ratio:5.2f}x{mark}")


def cleanup(repo: Path) -> None:
    """Remove what dualgit labelled for this repository, then the folder."""
    import shutil

    common = str((repo / ".git").resolve())
    ids = sh("docker", "ps", "-aq", "--filter", f"label=dualgit.repo={common}", cwd=repo).split()
    if ids:
        sh("docker", "rm", "-fv", *ids, cwd=repo)
    volumes = sh("docker", "volume", "ls", "-q", "--filter", f"label=dualgit.repo={common}", cwd=repo).split()
    if volumes:
        sh("docker", "volume", "rm", *volumes, cwd=repo)
    shutil.rmtree(repo.parent, ignore_errors=True)


def installed_copy(source: Path | None = None) -> Path:
    """A regular (non-editable) install of this checkout in a temporary venv, as `pip install dualgit`
    gives users; its dependencies come from the current venv through a .pth file. An editable
    install's import hook adds ~8 ms to every start, which users never pay."""
    import sysconfig

    root = Path(tempfile.mkdtemp(prefix="dualgit-bench-venv-"))
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    python = root / "bin" / "python"
    source = source or Path(__file__).resolve().parent.parent
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(source)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "dualgit-bench-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root / "bin"
