"""The core loop against real git and the real engine: up, ls, exec, down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import add_worktree, dual, git, need_image, write_config
from dualgit.engine.api import DockerAPI
from dualgit.naming import container_name

DEBIAN = "dualgit/debian:bookworm"


def ls_json(cwd: Path) -> list[dict]:  # type: ignore[type-arg]
    result = dual("ls", "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_up_ls_and_idempotence(repo: Path, docker: DockerAPI) -> None:
    feat = add_worktree(repo, "demo-feat", "feat/a")
    before = ls_json(repo)
    assert [row["state"] for row in before] == ["missing", "missing"]
    result = dual("up", cwd=feat)
    assert result.returncode == 0, result.stderr
    assert "feat/a: dual-demo-demo-feat-" in result.stdout
    rows = {row["branch"]: row for row in ls_json(repo)}
    assert rows["feat/a"]["state"] == "running" and rows["main"]["state"] == "missing"
    assert rows["feat/a"]["worktree"] == str(feat)
    assert rows["feat/a"]["container"] == container_name(str((repo / ".git").resolve()), str(feat))
    host = rows["feat/a"]["ports"]["3000"]
    assert host.startswith("127.0.0.1:")
    first_id = docker.get(f"/containers/{rows['feat/a']['container']}/json")["Id"]
    assert dual("up", cwd=feat).returncode == 0
    assert docker.get(f"/containers/{rows['feat/a']['container']}/json")["Id"] == first_id

    info = docker.get(f"/containers/{first_id}/json")
    assert info["Config"]["Labels"]["dualgit.worktree"] == str(feat)
    assert info["Config"]["Labels"]["dualgit.repo"] == str((repo / ".git").resolve())
    assert info["HostConfig"]["Init"] is True
    assert f"{feat}:{feat}" in info["HostConfig"]["Binds"]
    assert info["Config"]["WorkingDir"] == str(feat)


def test_up_starts_a_stopped_container_and_recreates_on_change(repo: Path, docker: DockerAPI) -> None:
    assert dual("up", cwd=repo).returncode == 0
    name = ls_json(repo)[0]["container"]
    first = docker.get(f"/containers/{name}/json")["Id"]
    assert dual("down", cwd=repo).returncode == 0
    assert ls_json(repo)[0]["state"] == "exited"
    assert dual("up", cwd=repo).returncode == 0
    assert ls_json(repo)[0]["state"] == "running"
    assert docker.get(f"/containers/{name}/json")["Id"] == first

    write_config(repo, "ports = [3000, 8080]\n")
    assert dual("up", cwd=repo).returncode == 0
    row = ls_json(repo)[0]
    assert sorted(row["ports"]) == ["3000", "8080"]
    assert docker.get(f"/containers/{name}/json")["Id"] != first


def test_down_several_or_all(repo: Path, docker: DockerAPI) -> None:
    trees = [repo, add_worktree(repo, "demo-b", "b"), add_worktree(repo, "demo-c", "c")]
    for tree in trees:
        assert dual("up", cwd=tree).returncode == 0
    some = dual("down", "b", "nope", "c", cwd=repo)
    assert some.returncode == 1 and some.stderr.startswith("error: no worktree of demo at or on 'nope'\n")
    assert some.stdout.splitlines() == [f"b: {ls_json(repo)[1]['container']} stopped",
                                        f"c: {ls_json(repo)[2]['container']} stopped"]
    assert [r["state"] for r in ls_json(repo)] == ["running", "exited", "exited"]
    assert dual("down", "--all", "b", cwd=repo).stderr.startswith("error: name worktrees or give --all, not both")
    every = dual("down", "--all", cwd=repo)
    assert every.returncode == 0 and every.stdout == f"main: {ls_json(repo)[0]['container']} stopped\n"  # the others were
    assert [r["state"] for r in ls_json(repo)] == ["exited"] * 3
    removed = dual("down", "--all", "--rm", cwd=repo)
    assert removed.returncode == 0 and len(removed.stdout.splitlines()) == 3
    assert [r["state"] for r in ls_json(repo)] == ["missing"] * 3 and all(t.exists() for t in trees)


def test_exec_exit_codes_stdin_and_directory(repo: Path, docker: DockerAPI) -> None:
    (repo / "sub").mkdir()
    assert dual("exec", "true", cwd=repo).returncode == 0  # creates the missing container first
    assert dual("exec", "sh", "-c", "exit 42", cwd=repo).returncode == 42
    missing = dual("exec", "no-such-program", cwd=repo)
    assert missing.returncode == 127
    assert missing.stderr == "no-such-program: command not found\n"
    assert dual("exec", "wc", "-l", cwd=repo, input="a\nb\n").stdout.strip() == "2"
    assert dual("exec", "pwd", cwd=repo / "sub").stdout == f"{(repo / 'sub').resolve()}\n"
    env = dual("exec", "-e", "GREETING=hello there", "--", "sh", "-c", 'echo "$GREETING"', cwd=repo)
    assert env.stdout == "hello there\n"
    assert dual("exec", "tty", cwd=repo).stdout == "not a tty\n"


def test_exec_pipes_are_byte_exact(repo: Path, docker: DockerAPI) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB with every byte value, CR and NUL included
    result = subprocess.run(["git", "dual", "exec", "cat"], cwd=repo, input=payload, capture_output=True)
    assert result.returncode == 0 and result.stdout == payload
    split = subprocess.run(["git", "dual", "exec", "sh", "-c", "echo out; echo err >&2"], cwd=repo, capture_output=True)
    assert (split.stdout, split.stderr) == (b"out\n", b"err\n")


def test_exec_starts_a_stopped_container(repo: Path, docker: DockerAPI) -> None:
    assert dual("up", cwd=repo).returncode == 0
    assert dual("down", cwd=repo).returncode == 0
    assert dual("exec", "echo", "back", cwd=repo).stdout == "back\n"


def test_ctrl_c_reaches_the_process_and_yields_130(repo: Path, docker: DockerAPI) -> None:
    assert dual("up", cwd=repo).returncode == 0
    # A terminal's Ctrl-C signals the whole foreground process group: so does this test.
    for argv in (["git-dual", "exec"], ["git", "dual", "exec"]):
        proc = subprocess.Popen([*argv, "sleep", "60"], cwd=repo, stdin=subprocess.DEVNULL, start_new_session=True,
                                stderr=subprocess.PIPE)
        time.sleep(1.5)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=15)
        said = proc.stderr.read().decode() if proc.stderr else ""
        # git re-raises the signal on itself, which a shell reports as 130 just the same; on a loaded
        # machine git's own signal handler can reap git-dual before git's wait does, and git then
        # exits 128 saying so (git's race, seen here once in a CI run beside another test run)
        gits_race = argv[0] == "git" and code == 128 and "waitpid for git-dual failed" in said
        assert code == (130 if argv[0] == "git-dual" else -signal.SIGINT) or gits_race, (code, said)
        assert "sleep 60" not in dual("exec", "ps", cwd=repo).stdout


def test_exec_allocates_a_tty_when_on_a_terminal(repo: Path, docker: DockerAPI) -> None:
    import pty

    assert dual("up", cwd=repo).returncode == 0
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(repo)
        os.execvp("git", ["git", "dual", "exec", "sh", "-c", "tty; stty size; exit 7"])
    output = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7
    assert b"/dev/pts/" in output


def test_eight_worktrees_serve_their_own_page_on_3000(repo: Path, docker: DockerAPI) -> None:
    trees = [add_worktree(repo, f"demo-{i}", f"feat/{i}") for i in range(8)]
    for i, tree in enumerate(trees):
        (tree / "www").mkdir()
        (tree / "www" / "index.html").write_text(f"page {i}\n")
        result = dual("exec", "httpd", "-p", "3000", "-h", str(tree / "www"), cwd=tree)
        assert result.returncode == 0, result.stderr

    def each_answers_its_own() -> None:
        for i, tree in enumerate(trees):
            got = dual("exec", "wget", "-qO-", "http://localhost:3000/", cwd=tree)
            assert got.stdout == f"page {i}\n", got.stderr

    each_answers_its_own()
    # one container's localhost never reaches another's: the main worktree's has no server
    assert dual("exec", "wget", "-qO-", "-T", "2", "http://localhost:3000/", cwd=repo).returncode != 0
    # restarting one leaves every container answering its own
    name = next(row["container"] for row in ls_json(repo) if row["worktree"] == str(trees[3]))
    docker.post(f"/containers/{name}/restart", query={"t": 1})
    assert dual("exec", "httpd", "-p", "3000", "-h", str(trees[3] / "www"), cwd=trees[3]).returncode == 0
    each_answers_its_own()
    # and each is published on its own loopback port
    rows = ls_json(repo)
    hosts = {row["ports"]["3000"] for row in rows}
    assert len(hosts) == 9 and all(h.startswith("127.0.0.1:") for h in hosts)


def test_git_works_inside_a_linked_worktree(repo: Path, docker: DockerAPI) -> None:
    need_image(docker, DEBIAN)
    feat = add_worktree(repo, "demo-feat", "feat/a")
    write_config(feat, f'image = "{DEBIAN}"\n')
    result = dual("exec", "git", "-c", "safe.directory=*", "status", "--short", "--branch", cwd=feat)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("## feat/a")
    assert " M .dual.toml" in result.stdout


def test_hostile_names_stay_distinct_and_unshelled(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    folders = ["feat-a", "$(touch pwned)", "semi;colon", "ünï", "x" * 200]
    branches = ["feat/a", "b$(touch${IFS}pwned)`touch${IFS}pwned`", "c;touch-pwned", "ünï/分支", "y" * 200]
    trees = [add_worktree(repo, f, b) for f, b in zip(folders, branches, strict=True)]
    git("worktree", "add", "-q", str(repo.parent / "feat" / "a"), "-b", "feat-a-too", cwd=repo)
    trees.append((repo.parent / "feat" / "a").resolve())
    for tree in trees:
        result = dual("up", cwd=tree)
        assert result.returncode == 0, result.stderr
    names = [row["container"] for row in ls_json(repo)[1:]]
    assert len(set(names)) == len(trees)
    assert all(len(n) <= 63 for n in names)
    assert not list(tmp_path.rglob("pwned")) and not list(tmp_path.rglob("touch-pwned"))


def test_bad_input_errors(repo: Path, tmp_path: Path, docker: DockerAPI) -> None:
    no_engine = dual("ls", cwd=repo, env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"})
    assert no_engine.returncode == 1
    assert no_engine.stderr.startswith("error: cannot reach the Docker engine (")
    assert "hint: " in no_engine.stderr
    no_engine_exec = dual("exec", "true", cwd=repo, env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"})
    assert no_engine_exec.returncode == 1 and "cannot reach the Docker engine" in no_engine_exec.stderr

    outside = tmp_path / "plain"
    outside.mkdir()
    for args in (["ls"], ["exec", "true"], ["up"]):
        result = dual(*args, cwd=outside)
        assert result.returncode == 1
        assert result.stderr.startswith(f"error: {outside.resolve()} is not inside a git repository")

    write_config(repo, 'image = "dualgit-test/not-here:1"\n')
    missing = dual("up", cwd=repo)
    assert missing.returncode == 1
    assert "image dualgit-test/not-here:1 is not on this machine" in missing.stderr
    assert "docker build -t dualgit-test/not-here:1" in missing.stderr

    write_config(repo, "ports = [3000\n")
    broken = dual("up", cwd=repo)
    assert broken.returncode == 1 and f"{repo.resolve()}/.dual.toml:1:14: unexpected end of file" in broken.stderr
    assert "Traceback" not in broken.stderr + missing.stderr + no_engine.stderr


def test_never_touches_what_is_not_ours(repo: Path, docker: DockerAPI) -> None:
    name = container_name(str((repo / ".git").resolve()), str(repo.resolve()))
    foreign = docker.post("/containers/create", {"Image": "busybox:latest", "Cmd": ["true"]}, {"name": name})["Id"]
    try:
        result = dual("up", cwd=repo)
        assert result.returncode == 1
        assert f"a container named {name} exists and is not dualgit's" in result.stderr
        assert ls_json(repo)[0]["state"] == "missing"
        assert dual("gc", cwd=repo).returncode == 0
        assert docker.get(f"/containers/{foreign}/json")["Id"] == foreign
    finally:
        docker.request("DELETE", f"/containers/{foreign}", query={"force": 1})


def test_an_argument_or_folder_that_is_not_utf8_gets_one_clear_line(repo: Path, docker: DockerAPI) -> None:
    assert dual("up", cwd=repo).returncode == 0
    bad = subprocess.run([b"git", b"dual", b"exec", b"echo", b"\xff"], cwd=repo, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("error: argument 2 (\\xff) is not valid UTF-8"), bad.stderr
    folder = repo / os.fsdecode(b"d\xff")
    folder.mkdir()
    here = subprocess.run(["git", "dual", "exec", "pwd"], cwd=folder, capture_output=True, text=True)
    assert here.returncode == 1 and "this folder" in here.stderr and "a folder whose name is UTF-8" in here.stderr
    piped = subprocess.run(["git", "dual", "exec", "cat"], cwd=repo, input=b"x\xffy", capture_output=True)
    assert piped.stdout == b"x\xffy"  # bytes through stdin pass as they are
