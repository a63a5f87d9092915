"""Files in a worktree belong to the person who owns it: the core loop as a non-root user in the
`docker` group, with a rootful local engine. As root (CI), the test makes that user and installs a
copy of this project where the user can read it (CI's clone may sit where only root can enter)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import IN_CI, remove_labelled
from dualgit.engine.api import DockerAPI

USER = "dualgit-owner-test"
PROJECT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
set -eu
cd "$WORK"
git init -q -b main shop && cd shop
git commit -q --allow-empty -m start
git dual init >/dev/null
printf 'image = "%s"\n' "$IMAGE" >.dual.toml
git add .dual.toml && git commit -q -m config
git worktree add -q ../feat -b feat 2>"$WORK/hook.err"
cd ../feat
echo "uid=$(git dual exec id -u) gid=$(git dual exec id -g)"
echo "root=$(git dual exec --root id -u)"
git dual exec sh -c 'mkdir -p node_modules/pkg/lib && echo x >node_modules/pkg/lib/index.js && touch made-inside'
echo "home=$(git dual exec sh -c 'touch "$HOME/.written" && echo "$HOME"')"
git dual exec --root touch made-by-root-on-purpose
git dual exec --root rm made-by-root-on-purpose
ls -ln node_modules/pkg/lib/index.js made-inside | awk '{print "owner", $3, $4, $9}'
cd ../shop
git worktree remove --force ../feat
echo "left=$(ls -A ../feat 2>/dev/null | wc -l)"
git worktree add -q ../node -b node
cd ../node
printf 'image = "%s"\n' "$USER_IMAGE" >.dual.toml
git dual up >/dev/null
echo "image user=$(git dual exec id -un) $(git dual exec id -u) home=$(git dual exec sh -c 'echo $HOME; touch $HOME/.npmrc')"
cd ../shop
git worktree remove --force ../node
git dual gc
"""
USER_IMAGE = "dualgit-test/with-user:latest"  # an image whose own user (uid 1234, like node's node) is not the host's


def _as_user() -> tuple[list[str], dict[str, str], Path]:
    """How to run a command as the test's non-root user: the prefix, the environment, its work dir."""
    if os.getuid() != 0:  # a developer's laptop: the test runs as that user
        work = Path(tempfile.mkdtemp(prefix="dualgit-owner-"))
        return [], dict(os.environ), work
    if shutil.which("useradd") is None or not os.path.exists("/usr/bin/python3"):
        pytest.fail("needs useradd and /usr/bin/python3") if IN_CI else pytest.skip("needs useradd and /usr/bin/python3")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--groups", "docker", USER], check=True)
    entry = pwd.getpwnam(USER)
    base = Path(tempfile.mkdtemp(prefix="dualgit-owner-", dir="/tmp"))
    base.chmod(0o755)
    source = base / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (PROJECT / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / rel, source / rel)
    venv = base / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(source)], check=True)
    work = base / "work"
    work.mkdir()
    os.chown(work, entry.pw_uid, entry.pw_gid)
    env = {"HOME": entry.pw_dir, "USER": USER, "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8",
           "GIT_AUTHOR_NAME": "Owner", "GIT_AUTHOR_EMAIL": "owner@example.invalid", "GIT_COMMITTER_NAME": "Owner",
           "GIT_COMMITTER_EMAIL": "owner@example.invalid", "DUALGIT_PROXY": "0", "GIT_CONFIG_NOSYSTEM": "1",
           "XDG_STATE_HOME": str(work / "state")}
    prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"]
    return prefix, env, work


@pytest.fixture
def as_user(docker: DockerAPI) -> Iterator[tuple[list[str], dict[str, str], Path]]:
    prefix, env, work = _as_user()
    dockerfile = ("FROM busybox:latest\nRUN echo 'node:x:1234:1234::/home/node:/bin/sh' >>/etc/passwd && "
                  "echo 'node:x:1234:' >>/etc/group && mkdir -p /home/node && chown 1234:1234 /home/node\n")
    subprocess.run(["docker", "build", "-q", "-t", USER_IMAGE, "-"], input=dockerfile, text=True, check=True,
                   capture_output=True)
    try:
        yield prefix, env, work
    finally:
        remove_labelled(docker, work)
        subprocess.run(["docker", "rmi", "-f", USER_IMAGE], capture_output=True)
        shutil.rmtree(work.parent if os.getuid() == 0 else work, ignore_errors=True)


def test_a_non_root_users_worktree_stays_theirs(as_user: tuple[list[str], dict[str, str], Path],
                                                 docker: DockerAPI) -> None:
    prefix, env, work = as_user
    uid, gid = (pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid) if prefix else (os.getuid(), os.getgid())
    result = subprocess.run([*prefix, "bash", "-c", SCRIPT], env={**env, "WORK": str(work), "IMAGE": "busybox:latest",
                                                                    "USER_IMAGE": USER_IMAGE},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr + (work / "hook.err").read_text(errors="replace")
    out = result.stdout
    assert f"uid={uid} gid={gid}" in out  # not root inside
    assert "root=0" in out  # root is one flag away
    assert "home=/home/" in out  # a writable HOME inside
    assert f"owner {uid} {gid} node_modules/pkg/lib/index.js" in out and f"owner {uid} {gid} made-inside" in out
    assert "left=0" in out and not (work / "feat").exists()  # git worktree remove took everything
    assert f"image user=node {uid} home=/home/node" in out  # the image's own user, remapped to the host's uid
    assert not (work / "node").exists()
    left = docker.get("/containers/json", {"all": 1, "filters": '{"label":["dualgit.repo"]}'})
    assert not [c for c in left if c["Labels"]["dualgit.worktree"] == str(work / "feat")], "its container went too"
