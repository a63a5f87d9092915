"""Commands route themselves into the branch's container through PATH shims: real shells, real
processes, the real engine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import add_worktree, dual, need_image, write_config
from dualgit.engine.api import DockerAPI
from tests_support import wait_for

DEBIAN = "dualgit/debian:bookworm"


def bash(script: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None,
         ) -> subprocess.CompletedProcess[str]:
    """A non-interactive `bash -c`, as an agent runs one, with dualgit's shell-init in effect."""
    return subprocess.run(["bash", "-c", f'eval "$(git dual shell-init bash)"\n{script}'], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})}, input=input)


@pytest.fixture
def spaces(repo: Path, docker: DockerAPI) -> tuple[Path, Path]:
    need_image(docker, DEBIAN)
    ws2 = add_worktree(repo, "demo-two", "two")
    for tree, page in ((repo, "one"), (ws2, "two")):
        write_config(tree, f'image = "{DEBIAN}"\n')
        (tree / "www").mkdir()
        (tree / "www" / "index.html").write_text(f"page {page}\n")
    assert dual("install", cwd=repo).returncode == 0
    return repo.resolve(), ws2


def test_each_worktree_gets_its_own_localhost_3000(spaces: tuple[Path, Path]) -> None:
    ws1, ws2 = spaces
    for ws in (ws1, ws2):  # servers started by a routed command, from a plain bash -c
        started = bash("{ cd www && python3 -m http.server 3000; } >/dev/null 2>&1 &", cwd=ws)
        assert started.returncode == 0, started.stderr
    for ws, page in ((ws1, "page one\n"), (ws2, "page two\n")):
        got = wait_for(lambda ws=ws: (r := bash("curl -s localhost:3000/", cwd=ws)).stdout and r)  # type: ignore[misc]
        assert got.stdout == page
    # processes spawned from Python (and through env, xargs) inherit PATH and route as well
    spawn = ("import subprocess, sys; sys.stdout.write(subprocess.run(['curl', '-s', 'localhost:3000/'], "
             f"cwd='{ws2}', capture_output=True, text=True).stdout)")
    assert bash(f"{sys.executable} -c \"{spawn}\"", cwd=ws1).stdout == "page two\n"
    assert bash("env curl -s localhost:3000/", cwd=ws1).stdout == "page one\n"
    assert bash("echo localhost:3000/ | xargs curl -s", cwd=ws2).stdout == "page two\n"


def test_hostname_inside_and_outside(spaces: tuple[Path, Path], tmp_path: Path) -> None:
    ws1, _ = spaces
    script = "python3 -c 'import socket; print(socket.gethostname())'"
    inside = bash(script, cwd=ws1 / "www")
    assert inside.returncode == 0 and inside.stdout.startswith("dual-demo-demo-")
    outside_dir = tmp_path / "elsewhere"
    outside_dir.mkdir()
    outside = bash(script, cwd=outside_dir)
    assert outside.returncode == 0 and outside.stdout.strip() == socket.gethostname()


def test_exit_codes_and_a_missing_command(spaces: tuple[Path, Path]) -> None:
    ws1, _ = spaces
    assert bash("python3 -c 'pass'", cwd=ws1).returncode == 0
    assert bash("python3 -c 'raise SystemExit(42)'", cwd=ws1).returncode == 42
    missing = bash("deno --version", cwd=ws1)  # on the route list, not in the image
    assert missing.returncode == 127
    assert missing.stderr == "deno: command not found\n"
    assert "docker" not in (missing.stderr + missing.stdout).lower()
    assert bash("printf 'a\\nb\\n' | python3 -c 'import sys; print(len(sys.stdin.readlines()))'", cwd=ws1).stdout == "2\n"


def test_environment_rule(spaces: tuple[Path, Path]) -> None:
    ws1, _ = spaces
    probe = ("python3 -c 'import os; "
             "print(os.environ.get(\"FOO\"), \"SSH_AUTH_SOCK\" in os.environ, os.environ[\"HOME\"], os.getcwd())'")
    got = bash(f"cd www && FOO=1 {probe}", cwd=ws1, env={"SSH_AUTH_SOCK": "/tmp/agent.sock", "TMPDIR": "/tmp/host-only"})
    assert got.stdout == f"1 False /root {ws1}/www\n"
    write_config(ws1, f'image = "{DEBIAN}"\nenv_pass = ["SSH_AUTH_SOCK"]\nenv_block = ["FOO"]\n')
    assert bash(f"FOO=1 {probe}", cwd=ws1, env={"SSH_AUTH_SOCK": "/x"}).stdout.startswith("None True /root")


def test_host_and_route_lists_and_which(spaces: tuple[Path, Path]) -> None:
    ws1, _ = spaces
    write_config(ws1, f'image = "{DEBIAN}"\nhost = ["curl"]\nroute = ["hostname"]\n')
    assert dual("up", cwd=ws1).returncode == 0  # makes the shim for `hostname`
    assert bash("hostname", cwd=ws1).stdout.startswith("dual-demo-demo-")
    assert "runs on this machine's" in dual("which", "curl", cwd=ws1).stdout
    assert "`host` in" in dual("which", "curl", cwd=ws1).stdout
    assert "runs in container dual-demo-demo-" in dual("which", "python3", cwd=ws1).stdout
    assert "never routes" in dual("which", "git", cwd=ws1).stdout
    assert bash("git rev-parse --show-toplevel", cwd=ws1).stdout == f"{ws1}\n"  # git stays on the host
    for value, inside in (("false", False), ("true", True), ("off", False), ("yes", True)):
        subprocess.run(["git", "config", "dual.enabled", value], cwd=ws1, check=True)
        name = bash("python3 -c 'import socket; print(socket.gethostname())'", cwd=ws1).stdout.strip()
        assert (name != socket.gethostname()) is inside, value


def test_shims_outside_worktrees_run_the_host_binary_without_looping(spaces: tuple[Path, Path], tmp_path: Path) -> None:
    plain = tmp_path / "plain-repo"
    plain.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=plain, check=True)
    folder = dual("env", cwd=tmp_path).stdout.split("'")[1]
    twice = f"export PATH='{folder}:{folder}/':\"$PATH\"\n"
    for where in (tmp_path, plain):  # outside any worktree, and in a repository without dualgit
        got = bash(twice + "curl --version | head -1; python3 -c 'import sys; print(sys.prefix)'", cwd=where)
        assert got.returncode == 0 and got.stdout.startswith("curl ")
    assert bash(twice + "no-such-tool-xyz", cwd=tmp_path).returncode == 127


def test_a_route_name_that_is_not_a_command_name_is_refused() -> None:
    """`.dual.toml` is data a container can write: its names become shim files, never paths or scripts."""
    from dualgit.errors import DualgitError
    from dualgit.shell.route import Rules

    assert Rules({"route": ["npm", "node-gyp", "c++", "python3.12"]}).route == {"npm", "node-gyp", "c++", "python3.12"}
    for bad in ("../../bin/evil", "x'; touch /tmp/p; '", "", ".hidden", "-rf", "a b", "new\nline"):
        try:
            Rules({"route": [bad]})
        except DualgitError as exc:
            assert "is not a command name" in exc.message and "letters, digits" in (exc.hint or "")
        else:
            raise AssertionError(f"{bad!r} was taken")
