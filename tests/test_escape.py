"""No way out of a branch's container: a test plays the hostile process inside (an agent, an install
script), from a linked worktree's container and from the main worktree's, and after each attempt the
host runs everyday git (status, checkout, commit, fetch). Nothing may run on the host."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import add_worktree, dual, git, need_image, write_config
from dualgit.engine.api import DockerAPI
from dualgit.githooks import install as githooks

DEBIAN = "dualgit/debian:bookworm"

# Each attack, as a process inside could run it: `$M` is a marker file on the host that the command
# it plants would make; `$C` the common git dir; `$W` this worktree. Every one must fail to plant.
ATTACKS = {
    "fsmonitor": 'git config core.fsmonitor "touch $M"',
    "hooksPath": 'mkdir -p h && printf "#!/bin/sh\\ntouch $M\\n" >h/post-checkout && chmod +x h/post-checkout '
                 '&& git config core.hooksPath "$W/h"',
    "new hook": 'printf "#!/bin/sh\\ntouch $M\\n" >"$C/hooks/post-commit" && chmod +x "$C/hooks/post-commit"',
    "dualgit's hook script": 'printf "touch $M\\n" >>"$C/hooks/post-checkout"',
    "sshCommand": 'git config core.sshCommand "touch $M; ssh"',
    "diff.external": 'git config diff.external "sh -c \\"touch $M\\""',
    "filter driver": 'git config filter.x.clean "sh -c \\"touch $M; cat\\"" && echo "* filter=x" >"$C/info/attributes"',
    "merge driver": 'git config merge.x.driver "touch $M"',
    "include.path": 'printf "[core]\\n\\tfsmonitor = touch $M\\n" >"$W/inc" && git config include.path "$W/inc"',
    "alias": 'git config alias.status "!touch $M"',
    "config.worktree": 'printf "[core]\\n\\tfsmonitor = touch $M\\n" >>"$C/config.worktree"',
    "worktree config": 'for f in "$C"/worktrees/*/config.worktree; do printf "[core]\\n\\tfsmonitor = touch $M\\n" >>"$f"; done',
    "config replaced": 'printf "[core]\\n\\tfsmonitor = touch $M\\n" >"$C/c2" && mv "$C/c2" "$C/config"',
    "gitdir pointer": 'mkdir -p "$W/fake" && cp -r "$C/." "$W/fake/" 2>/dev/null; '
                      'printf "[core]\\n\\tfsmonitor = touch $M\\n" >"$W/fake/config" && echo "gitdir: $W/fake" >"$W/.git"',
    "commondir pointer": 'for f in "$C"/worktrees/*/commondir; do echo "$W/fake" >"$f"; done',
    "git dir renamed": 'mv "$C" "$C.away" && mkdir "$C" && printf "[core]\\n\\tfsmonitor = touch $M\\n" >"$C/config"',
    "legacy remote": 'printf "URL: ext::sh -c touch\\\\ $M\\n" >"$C/remotes/origin"',
}


def everyday_git(tree: Path, marker: Path, tag: str) -> None:
    """What the host does next in that worktree: status, checkout, commit, fetch."""
    for args in (["status"], ["checkout", "-q", "-b", f"x-{tag}"], ["checkout", "-q", "-"],
                 ["commit", "-q", "--allow-empty", "-m", tag], ["fetch", "-q", "origin"], ["diff", "HEAD~1"]):
        subprocess.run(["git", *args], cwd=tree, capture_output=True, timeout=60)
    assert not marker.exists(), f"{tag}: the host ran a command a container planted"


@pytest.fixture
def trees(repo: Path, docker: DockerAPI, tmp_path: Path) -> dict[str, Path]:
    need_image(docker, DEBIAN)
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    git("remote", "add", "origin", str(origin), cwd=repo)
    git("push", "-q", "origin", "main", cwd=repo)
    assert dual("install", cwd=repo).returncode == 0
    write_config(repo, f'image = "{DEBIAN}"\n')
    git("commit", "-qam", "debian", cwd=repo)
    feat = add_worktree(repo, "demo-feat", "feat")
    for tree in (repo, feat):
        assert dual("up", cwd=tree).returncode == 0
    return {"main": repo, "feat": feat}


@pytest.mark.parametrize("kind", ["feat", "main"])
def test_nothing_written_inside_makes_the_host_run_a_command(trees: dict[str, Path], kind: str, tmp_path: Path) -> None:
    tree = trees[kind]
    common = (trees["main"] / ".git").resolve()
    hook = common / "hooks" / "post-checkout"
    script = hook.read_bytes()
    failed = []
    for name, attack in ATTACKS.items():
        marker = tmp_path / f"ran-{kind}-{name.replace(' ', '-')}"
        inside = dual("exec", "-e", f"M={marker}", "-e", f"C={common}", "-e", f"W={tree}", "sh", "-c", attack, cwd=tree)
        if inside.returncode == 0:
            failed.append(name)
        everyday_git(tree, marker, f"{kind}-{name.replace(' ', '-').replace('.', '-')}")
        everyday_git(trees["main" if kind == "feat" else "feat"], marker, f"other-{name.replace(' ', '-')}")
    assert hook.read_bytes() == script and githooks.is_ours(str(hook))  # dualgit's script is as installed
    assert failed == [], f"these attacks wrote what they meant to: {failed}"
    assert (common / "config").read_text().count("fsmonitor") == 0


def test_git_inside_still_does_the_everyday_work(trees: dict[str, Path]) -> None:
    feat = trees["feat"]
    (feat / ".remote.git").mkdir()
    git("init", "-q", "--bare", str(feat / ".remote.git"), cwd=feat)
    (feat / ".git").read_text()  # a linked worktree: its .git is a file, read-only inside
    script = """set -e
git config --global user.name Inside && git config --global user.email inside@example.invalid
echo work >work.txt && git add work.txt && git status --short
git commit -qm "made inside"
git branch side && git switch -q side && git switch -q feat
echo stash >>work.txt && git stash -q && git stash list | grep -c stash
git push -q "$PWD/.remote.git" HEAD:refs/heads/pushed
git fetch -q "$PWD/.remote.git" pushed && git rev-parse FETCH_HEAD >fetched.txt
git config user.name X 2>&1 || echo "repo config refused"
"""
    inside = dual("exec", "sh", "-c", script, cwd=feat)
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert "A  work.txt" in inside.stdout and "repo config refused" in inside.stdout
    assert "could not write config file" in inside.stdout  # git's own words for the read-only config
    assert git("log", "-1", "--format=%an %s", "feat", cwd=trees["main"]).strip() == "Inside made inside"
    assert "side" in git("branch", "--list", "side", cwd=trees["main"])
    assert git("stash", "list", cwd=feat).count("stash@") == 1
    assert git("rev-parse", "pushed", cwd=feat / ".remote.git") == git("rev-parse", "feat", cwd=feat)
    assert (feat / "fetched.txt").read_text() == git("rev-parse", "feat", cwd=feat)  # fetched inside
    # --global inside is the container's own, and survives a restart
    assert dual("down", cwd=feat).returncode == 0 and dual("up", cwd=feat).returncode == 0
    assert dual("exec", "git", "config", "--global", "user.name", cwd=feat).stdout.strip() == "Inside"
    assert "Inside" not in (Path.home() / ".gitconfig").read_text()


PLANT = """set -e
git config --global user.name Inside && git config --global user.email inside@example.invalid
for d in . sub; do
  mkdir -p "$d/dualgit"
  printf 'open("%s", "w").close()\\n' "$M" >"$d/dualgit/__init__.py"
  cp "$d/dualgit/__init__.py" "$d/dualgit/__main__.py"
done
git add -A && git commit -qm "a dualgit package of its own"
"""


def test_a_dualgit_package_planted_in_a_worktree_never_runs_on_the_host(trees: dict[str, Path], tmp_path: Path) -> None:
    """Python puts the current folder first on sys.path for `python -m`: a `dualgit` package that a
    container writes into its worktree (and commits) would run on the host wherever dualgit starts
    itself from that folder: a PATH shim, the hook in a worktree made from that branch, exec's
    background clean-up, the setup runner."""
    feat, marker = trees["feat"], tmp_path / "planted-ran"
    inside = dual("exec", "-e", f"M={marker}", "sh", "-c", PLANT, cwd=feat)
    assert inside.returncode == 0, inside.stderr
    assert (feat / "sub" / "dualgit" / "__main__.py").exists()
    assert dual("shell-init", "bash", cwd=feat).returncode == 0  # makes the PATH shims
    shim = Path.home() / ".local" / "share" / "dualgit" / "shims" / "python3"
    assert shim.exists()
    for folder in (feat, feat / "sub"):
        subprocess.run([str(shim), "-c", "pass"], cwd=folder, capture_output=True, timeout=60)
    assert not marker.exists(), "a PATH shim imported the worktree's own dualgit package"
    for stamp in (Path.home() / ".local" / "state" / "dualgit" / "reconciled").glob("*"):
        stamp.unlink()  # so that the next exec starts its background clean-up, from this folder
    assert dual("exec", "true", cwd=feat / "sub").returncode == 0
    assert dual("up", "--setup", cwd=feat).returncode == 0
    added = subprocess.run(["git", "worktree", "add", "-q", "-b", "planted", "../demo-planted", "feat"],
                           cwd=trees["main"], capture_output=True, text=True, timeout=120)
    assert not marker.exists(), "the hook, in a worktree of that branch, imported its dualgit package"
    assert added.returncode == 0 and "-> container" in added.stderr, added.stderr  # the hook ran, in Python
    for _ in range(30):  # the clean-up and the setup runner run detached: give them time to start
        if marker.exists():
            break
        subprocess.run(["sleep", "0.1"])
    assert not marker.exists(), "the host imported the worktree's own dualgit package"
