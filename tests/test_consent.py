"""A repository can't widen its own container: what devcontainer.json asks for beyond the worktree
(privileged mode, capabilities, security options, mounts of host paths) applies only after the
user's yes on the host, `git dual allow`, for those exact settings. The test writes the config from
inside the container, as a hostile process would. `initializeCommand` never runs on the host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import dual, git
from dualgit.engine.api import DockerAPI

pytestmark = pytest.mark.docker

CONFIG = {
    "image": "busybox:latest",
    "capAdd": ["SYS_PTRACE", "CHOWN"],  # CHOWN is in Docker's default set: it needs no yes
    "securityOpt": ["seccomp=unconfined"],
    "mounts": ["source=${localEnv:OUTSIDE},target=/outside,type=bind,readonly",
               {"source": "${localWorkspaceFolder}/inside", "target": "/inside", "type": "bind"}],
    "initializeCommand": "touch ${localEnv:MARKER}",
}


def host_config(docker: DockerAPI, tree: Path) -> dict:  # type: ignore[type-arg]
    found = [c for c in docker.containers({"label": [f"dualgit.worktree={tree}"]})]
    assert len(found) == 1, found
    return docker.inspect_container(found[0]["Id"])["HostConfig"]  # type: ignore[no-any-return]


def test_power_waits_for_the_users_yes(repo: Path, docker: DockerAPI, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    outside, marker = tmp_path / "outside", tmp_path / "initialized"
    outside.mkdir()
    (outside / "secret").write_text("host file\n")
    monkeypatch.setenv("OUTSIDE", str(outside))
    monkeypatch.setenv("MARKER", str(marker))
    (repo / ".dual.toml").unlink()
    (repo / ".devcontainer").mkdir()
    (repo / ".devcontainer" / "devcontainer.json").write_text(json.dumps({**CONFIG, "privileged": True}))
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "devcontainer", cwd=repo)
    assert dual("install", cwd=repo).returncode == 0
    feat = repo.parent / "demo-feat"
    added = subprocess_run(["git", "worktree", "add", "-q", str(feat), "-b", "feat"], repo)
    assert (feat / "inside").is_dir()  # the engine made the bind's source, inside the worktree
    said = [line for line in added.stderr.splitlines() if "held back" in line]
    assert len(said) == 1 and "`git dual allow`" in said[0], added.stderr
    for phrase in ("privileged", "capAdd SYS_PTRACE", "securityOpt seccomp=unconfined", f"mount {outside} -> /outside"):
        assert phrase in said[0], said
    assert "CHOWN" not in said[0] and "/inside" not in said[0]  # a default capability; a folder of the worktree
    assert "initializeCommand is not honoured: it would run on the host" in added.stderr
    held = host_config(docker, feat)
    assert not held.get("Privileged") and held.get("CapAdd") == ["CHOWN"] and not held.get("SecurityOpt")
    assert not any("/outside" in b for b in held["Binds"]) and any(b.endswith(":/inside") for b in held["Binds"])

    # The container rewrites its config (no privileged mode, say): still nothing without a yes.
    plain = json.dumps(CONFIG)
    assert dual("exec", "sh", "-c", f"cat >.devcontainer/devcontainer.json <<'EOF'\n{plain}\nEOF", cwd=feat).returncode == 0
    up = dual("up", cwd=feat)
    assert up.returncode == 0 and "held back" in up.stderr and "privileged" not in up.stderr, up.stderr
    assert host_config(docker, feat).get("CapAdd") == ["CHOWN"]

    allowed = json.loads(dual("allow", "--json", cwd=feat).stdout)
    assert allowed["allowed"] and allowed["settings"] == sorted(
        ["capAdd SYS_PTRACE", "securityOpt seccomp=unconfined", f"mount {outside} -> /outside (read-only)"])
    up = dual("up", cwd=feat)
    assert up.returncode == 0 and "held back" not in up.stderr, up.stderr
    given = host_config(docker, feat)
    assert given["CapAdd"] == ["CHOWN", "SYS_PTRACE"] and given["SecurityOpt"] == ["seccomp=unconfined"]
    assert dual("exec", "cat", "/outside/secret", cwd=feat).stdout == "host file\n"
    assert dual("exec", "sh", "-c", "echo x >/outside/written", cwd=feat).returncode != 0  # read-only, as asked

    # A changed setting asks again: the whole list is held back until the new one is allowed.
    sock = json.dumps({**CONFIG, "mounts": [*CONFIG["mounts"], "source=/var/run/docker.sock,target=/s,type=bind"]})
    assert dual("exec", "sh", "-c", f"cat >.devcontainer/devcontainer.json <<'EOF'\n{sock}\nEOF", cwd=feat).returncode == 0
    up = dual("up", cwd=feat)
    assert up.returncode == 0 and "mount /var/run/docker.sock -> /s" in up.stderr, up.stderr
    again = host_config(docker, feat)
    assert again.get("CapAdd") == ["CHOWN"] and not any("docker.sock" in b for b in again["Binds"])

    assert json.loads(dual("allow", "--revoke", "--json", cwd=feat).stdout)["revoked"] == 1
    assert not marker.exists(), "initializeCommand ran on the host"


def subprocess_run(args: list[str], cwd: Path):  # type: ignore[no-untyped-def]
    import subprocess

    ran = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    return ran


def test_nothing_to_allow_says_so(repo: Path) -> None:
    """No engine is asked: what a container is made from comes from the worktree's files."""
    ran = dual("allow", cwd=repo, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert ran.returncode == 0 and "nothing to allow" in ran.stdout, ran.stderr
