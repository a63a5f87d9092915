"""No way out of a branch's container: a test plays the hostile process inside (an agent, an install
script), from a linked worktree's container and from the main worktree's. Before each attempt the
host writes the repository's config, a worktree's config and dualgit's hook files, the everyday way
(`git config`, `git push -u`, `git checkout -b x origin/x`, `git dual install`): a protection that
such a write undoes is no protection. After each attempt the host runs everyday git (status,
checkout, commit, fetch). Nothing may run on the host."""

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
    "commondir planted": 'mkdir -p "$W/fake" && printf "[core]\\n\\tfsmonitor = touch $M\\n" >"$W/fake/config" '
                         '&& echo "$W/fake" >"$C/commondir"',
    "own admin dir config": 'printf "[core]\\n\\tfsmonitor = touch $M\\n" >"$(git rev-parse --git-dir)/config.worktree.new" '
                            '&& mv "$(git rev-parse --git-dir)/config.worktree.new" "$(git rev-parse --git-dir)/config.worktree"',
}


def host_writes(trees: dict[str, Path], round: int, worktree_config: bool) -> None:
    """The host's everyday writes of git's files, each of which renames a file over another: the
    repository config, the upstream of a pushed branch, a branch made from a remote one, dualgit's
    hooks, and (where the repository has it) a worktree's own config."""
    main, feat = trees["main"], trees["feat"]
    git("config", "dual.round", str(round), cwd=main)
    if round == 0:
        git("config", "--unset", "core.fsmonitor", cwd=feat)
    git("push", "-q", "-u", "origin", "feat", cwd=feat)
    git("push", "-q", "origin", f"feat:refs/heads/up-{round}", cwd=feat)
    git("fetch", "-q", "origin", cwd=main)
    git("checkout", "-q", "-b", f"x-{round}", f"origin/up-{round}", cwd=main)  # records its upstream
    git("checkout", "-q", "main", cwd=main)
    assert dual("install", cwd=main).returncode == 0
    if worktree_config:
        for tree in (main, feat):
            git("config", "--worktree", "dual.round", str(round), cwd=tree)


def everyday_git(tree: Path, marker: Path, tag: str) -> None:
    """What the host does next in that worktree: status, checkout, commit, fetch."""
    for args in (["status"], ["checkout", "-q", "-b", f"x-{tag}"], ["checkout", "-q", "-"],
                 ["commit", "-q", "--allow-empty", "-m", tag], ["fetch", "-q", "origin"], ["diff", "HEAD~1"]):
        subprocess.run(["git", *args], cwd=tree, capture_output=True, timeout=60)
    assert not marker.exists(), f"{tag}: the host ran a command a container planted"


BOTH = pytest.mark.parametrize("trees", ["plain", "worktreeConfig"], indirect=True)


@pytest.fixture
def trees(request: pytest.FixtureRequest, repo: Path, docker: DockerAPI, tmp_path: Path) -> dict[str, Path]:
    """main and feat, each with its container; with the param "worktreeConfig", the repository reads
    per-worktree config, as `git sparse-checkout` makes it."""
    need_image(docker, DEBIAN)
    found = {}
    if getattr(request, "param", "plain") == "worktreeConfig":
        found["worktree_config"] = repo  # per-worktree config, as `git sparse-checkout` turns it on
        git("config", "extensions.worktreeConfig", "true", cwd=repo)
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    git("remote", "add", "origin", str(origin), cwd=repo)
    git("push", "-q", "origin", "main", cwd=repo)
    assert dual("install", cwd=repo).returncode == 0
    write_config(repo, f'image = "{DEBIAN}"\n')
    git("commit", "-qam", "debian", cwd=repo)
    feat = add_worktree(repo, "demo-feat", "feat")
    git("config", "core.fsmonitor", "false", cwd=feat)  # so that the host's first round unsets it
    for tree in (repo, feat):
        assert dual("up", cwd=tree).returncode == 0
    return {**found, "main": repo, "feat": feat}


@BOTH
@pytest.mark.parametrize("kind", ["feat", "main"])
def test_nothing_written_inside_makes_the_host_run_a_command(trees: dict[str, Path], kind: str, tmp_path: Path) -> None:
    tree = trees[kind]
    common = (trees["main"] / ".git").resolve()
    hook = common / "hooks" / "post-checkout"
    script = hook.read_bytes()
    failed = []
    for round, (name, attack) in enumerate(ATTACKS.items()):
        host_writes(trees, round, "worktree_config" in trees)
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
    host_writes(trees, 0, False)
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
    assert "could not lock config file" in inside.stdout and "Read-only file system" in inside.stdout
    assert git("log", "-1", "--format=%an %s", "feat", cwd=trees["main"]).strip() == "Inside made inside"
    assert "side" in git("branch", "--list", "side", cwd=trees["main"])
    assert git("stash", "list", cwd=feat).count("stash@") == 1
    assert git("rev-parse", "pushed", cwd=feat / ".remote.git") == git("rev-parse", "feat", cwd=feat)
    assert (feat / "fetched.txt").read_text() == git("rev-parse", "feat", cwd=feat)  # fetched inside
    # --global inside is the container's own, and survives a restart
    assert dual("down", cwd=feat).returncode == 0 and dual("up", cwd=feat).returncode == 0
    assert dual("exec", "git", "config", "--global", "user.name", cwd=feat).stdout.strip() == "Inside"
    assert "Inside" not in (Path.home() / ".gitconfig").read_text()


READS = """set -e
git status --short >/dev/null && git log -1 --format=%s >/dev/null && git diff HEAD >/dev/null
git branch made-inside-$T && git init -q --bare "$PWD/.out-$T.git" && git push -q "$PWD/.out-$T.git" made-inside-$T
if git commit -q --allow-empty -m no 2>err.txt; then echo committed; else echo "commit refused"; fi
"""


@BOTH
def test_where_git_inside_only_reads_it_says_so(trees: dict[str, Path]) -> None:
    """The main worktree's HEAD and index sit in the common dir, which is read-only inside; so does a
    linked worktree's admin dir where per-worktree config is on. Git there still reads, makes
    branches and pushes; a commit is refused with git's own words, and nothing half-written stays."""
    host_writes(trees, 0, "worktree_config" in trees)
    kinds = ["main", "feat"] if "worktree_config" in trees else ["main"]
    for kind in kinds:
        tree = trees[kind]
        before = git("rev-parse", "HEAD", cwd=tree)
        inside = dual("exec", "-e", f"T={kind}", "sh", "-c", READS, cwd=tree)
        assert inside.returncode == 0, inside.stdout + inside.stderr
        assert "commit refused" in inside.stdout
        assert "Read-only file system" in (tree / "err.txt").read_text()
        assert git("rev-parse", "HEAD", cwd=tree) == before
        assert git("rev-parse", f"made-inside-{kind}", cwd=tree) == before
        assert f"made-inside-{kind}" in git("ls-remote", str(tree / f".out-{kind}.git"), cwd=tree)


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
