"""Idle branches sleep and wake: the proxy stops a branch idle for its `idle_after` (never one with
a command running in it), its next request, TCP connection or exec starts it again with `serve`,
a branch the user put down stays down, the clocks outlive a proxy restart, and the caps hold."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PORT, add_worktree, dual, write_config
from dualgit.config import parse, parse_user
from dualgit.engine.api import DockerAPI
from dualgit.errors import DualgitError
from test_proxy_e2e import Proxy, request
from tests_support import wait_for

WWW = 'serve = "httpd -f -p 127.0.0.1:$PORT -h www"\n'


def row(tree: Path) -> dict[str, object]:
    rows = json.loads(dual("ls", "--json", cwd=tree).stdout)
    return next(r for r in rows if r["worktree"] == str(tree.resolve()))


def state(tree: Path) -> str:
    return str(row(tree)["state"])


def site(tree: Path, text: str, extra: str = "") -> None:
    (tree / "www").mkdir(exist_ok=True)
    (tree / "www" / "index.html").write_text(text)
    write_config(tree, f'image = "busybox:latest"\nports = [{PORT}]\n{WWW}{extra}')


def keep_port_served(repo: Path) -> Path:
    """Another branch on :PORT that never sleeps: the proxy serves the port while this one is down
    (a port no running or sleeping branch declares is let go, for the host's own servers)."""
    other = add_worktree(repo, "demo-other", "other")
    site(other, "other\n", "idle_after = 0\n")
    assert dual("up", cwd=other).returncode == 0
    return other


def serving(tree: Path) -> bool:
    return any(s["detail"] == f"listening on :{PORT}" for s in row(tree)["serve"])  # type: ignore[attr-defined]


def started_count(docker: DockerAPI, name: str) -> int:
    return int(docker.request("GET", f"/containers/{name}/json").json()["RestartCount"]) + 0


# pure: the config keys


def test_durations_sizes_and_cpus_are_read_and_bad_ones_named_with_file_line_and_column() -> None:
    config = parse('idle_after = "1h30m"\nmemory = "512m"\ncpus = 0.5\n', "x.toml")
    assert (config.idle_after, config.memory, config.cpus) == (5400, 512 << 20, 0.5)
    assert parse("idle_after = 90\n", "x.toml").idle_after == 90
    assert parse('idle_after = "0"\nmemory = "1.5g"\n', "x.toml").memory == 3 << 29
    for text, said in (('idle_after = "soon"\n', 'x.toml:1:14: `idle_after` must be a duration such as "90s"'),
                       ('memory = "lots"\n', 'x.toml:1:10: `memory` must be a size as Docker writes it'),
                       ('memory = "1m"\n', "of 6m or more"),
                       ("cpus = -1\n", "x.toml:1:8: `cpus` must be a number of CPUs above 0"),
                       ("max_running = 3\n", "x.toml:1:15: `max_running` is user-wide")):
        with pytest.raises(DualgitError) as caught:
            parse(text, "x.toml")
        assert caught.value.message.startswith(said) or said in caught.value.message, caught.value.message
    user = parse_user('max_running = 4\nidle_after = "10m"\n', "u.toml")
    assert (user.max_running, user.idle_after) == (4, 600)
    with pytest.raises(DualgitError) as caught:
        parse_user('max_running = "many"\n', "u.toml")
    assert caught.value.message.startswith("u.toml:1:15: `max_running` must be a whole number")


@pytest.mark.docker  # `up` reads the user's file once the engine answered
def test_a_bad_user_config_is_one_line_with_its_place(repo: Path, git_env: Path) -> None:
    file = git_env / ".config" / "dualgit" / "config.toml"
    file.parent.mkdir(parents=True)
    file.write_text('memory = "a lot"\n')
    write_config(repo, 'image = "busybox:latest"\n')
    result = dual("up", cwd=repo)
    assert result.returncode != 0
    assert f"{file}:1:10: `memory` must be a size" in result.stderr, result.stderr


# real Docker


def test_an_idle_branch_sleeps_and_its_first_request_wakes_it_with_its_server(
        repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    site(repo, "awake\n", "idle_after = 3\n")
    assert dual("up", cwd=repo).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        wait_for(lambda: request("main.demo.localhost")[2] == b"awake\n", timeout=30)
        wait_for(lambda: state(repo) == "asleep", timeout=30)
        name = str(row(repo)["container"])
        assert docker.request("GET", f"/containers/{name}/json").json()["State"]["Running"] is False
        assert "asleep" in dual("ls", cwd=repo).stdout.splitlines()[1]
        wait_for(lambda: json.loads(dual("proxy", "status", "--json", cwd=repo).stdout)["asleep"] == [name])
        assert b"(asleep)" in request("localhost")[2]  # the index of branches says so
        assert row(repo)["asleep_since"]
        # a hot-reload probe does not wake it
        status, _, _ = request("main.demo.localhost", headers={"Accept": "text/x-vite-ping"})
        assert status == 503
        time.sleep(1.5)
        assert state(repo) == "asleep"
        # many requests at once: one wake, and each is held, then answered by the server
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: request("main.demo.localhost"), range(8)))
        assert [a[2] for a in answers] == [b"awake\n"] * 8, answers
        assert open(tmp_path / "proxy.log").read().count("awake in") == 1
        assert state(repo) == "running"
        # a page load gets the waking page at once, and it reloads itself
        wait_for(lambda: state(repo) == "asleep", timeout=30)
        status, headers, body = request("main.demo.localhost", headers={"Sec-Fetch-Mode": "navigate",
                                                                         "Accept": "text/html"})
        assert status == 503 and headers["retry-after"] == "1" and b"Waking main" in body, body
        assert b"http-equiv=refresh" in body
        wait_for(lambda: request("main.demo.localhost")[2] == b"awake\n", timeout=30)
    finally:
        proxy.stop()


def test_a_running_exec_keeps_it_awake_and_exec_wakes_it(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    site(repo, "x\n", "idle_after = 2\n")
    assert dual("up", cwd=repo).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        ran = dual("exec", "sh", "-c", "sleep 6; echo done", cwd=repo)
        assert ran.returncode == 0 and ran.stdout == "done\n"  # not cut short by a sleep
        wait_for(lambda: state(repo) == "asleep", timeout=30)
        ran = dual("exec", "cat", "www/index.html", cwd=repo)
        assert ran.returncode == 0 and ran.stdout == "x\n"
        assert state(repo) == "running"
        wait_for(lambda: serving(repo), timeout=30)  # and its server is back
    finally:
        proxy.stop()


def test_a_branch_put_down_stays_down_and_up_brings_it_back(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    site(repo, "up\n", "idle_after = 2\n")
    assert dual("up", cwd=repo).returncode == 0
    keep_port_served(repo)
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        wait_for(lambda: state(repo) == "asleep", timeout=30)
        assert dual("down", cwd=repo).returncode == 0
        assert state(repo) == "exited"
        status, _, body = request("main.demo.localhost")
        assert status == 502 and b"git dual up" in body
        time.sleep(1)
        assert state(repo) == "exited"  # not woken
        assert dual("up", cwd=repo).returncode == 0
        wait_for(lambda: request("main.demo.localhost")[2] == b"up\n", timeout=30)
    finally:
        proxy.stop()


def test_the_idle_clock_outlives_a_proxy_restart(repo: Path, docker: DockerAPI, tmp_path: Path, git_env: Path) -> None:
    """The clock counts from the last activity: a proxy started after a long idle stretch puts the
    branch to sleep at once, rather than counting from its own start."""
    site(repo, "x\n", 'idle_after = "1h"\n')
    assert dual("up", cwd=repo).returncode == 0
    name = str(row(repo)["container"])
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        wait_for(lambda: request("main.demo.localhost")[2] == b"x\n", timeout=30)
        clock = git_env / ".local" / "state" / "dualgit" / "setup" / f"{name}.active"
        wait_for(clock.exists)
        proxy.stop()
        hour_ago = time.time() - 3700
        for path in (clock, *[p for p in repo.rglob("*") if ".git" not in p.parts]):
            os.utime(path, (hour_ago, hour_ago), follow_symlinks=False)
        os.utime(repo, (hour_ago, hour_ago))
        proxy.start()
        wait_for(lambda: state(repo) == "asleep", timeout=15)
    finally:
        proxy.stop()


def test_a_file_changed_in_the_worktree_keeps_it_awake(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    site(repo, "x\n", "idle_after = 3\n")
    assert dual("up", cwd=repo).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        (repo / "node_modules").mkdir()
        for second in range(7):  # edits, and a dev server's own output (which does not count)
            (repo / "node_modules" / "cache").write_text(str(second))
            if second < 5:
                (repo / "notes.txt").write_text(str(second))
            time.sleep(1)
            assert state(repo) == "running", second
        wait_for(lambda: state(repo) == "asleep", timeout=30)
    finally:
        proxy.stop()


def test_raw_tcp_wakes_it(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\ntcp_ports = [7000]\nidle_after = 2\n'
                       'serve = "nc -ll -p 7000 -e cat & httpd -f -p $PORT"\n')
    assert dual("up", cwd=repo).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        urls = json.loads(dual("urls", "--json", cwd=repo).stdout)
        tcp = next(u for u in urls if u.get("kind", "") == "tcp" or str(u.get("url", "")).startswith("tcp://"))
        port = int(str(tcp["url"]).rsplit(":", 1)[1])
        wait_for(lambda: state(repo) == "asleep", timeout=30)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"ping\n")
            assert conn.recv(100) == b"ping\n"
        assert state(repo) == "running"
    finally:
        proxy.stop()


def test_caps_are_set_changed_live_and_an_out_of_memory_server_is_said(
        repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    hog = 'x=$(head -c 200000000 /dev/zero | tr "\\\\0" a); sleep 1000'
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\nmemory = "64m"\ncpus = 0.5\nserve = \'{hog}\'\n')
    assert dual("up", cwd=repo).returncode == 0
    name = str(row(repo)["container"])
    info = docker.request("GET", f"/containers/{name}/json").json()
    assert (info["HostConfig"]["Memory"], info["HostConfig"]["NanoCpus"]) == (64 << 20, 500_000_000)
    wait_for(lambda: any(s["oom"] for s in row(repo)["serve"]), timeout=60)  # type: ignore[attr-defined]
    text = dual("ls", cwd=repo).stdout
    assert "killed by its memory cap" in text, text
    assert "killed by the container's memory cap" in dual("logs", "--serve", cwd=repo).stdout
    # stopped after that kill, the engine says so: ls, logs and the URL's page name the cap
    keep_port_served(repo)
    subprocess.run(["docker", "stop", "-t", "1", name], check=True, capture_output=True)
    assert docker.request("GET", f"/containers/{name}/json").json()["State"]["OOMKilled"] is True
    assert "exited (out of memory)" in dual("ls", cwd=repo).stdout
    assert "killed by its memory cap" in dual("logs", cwd=repo).stderr
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        status, _, body = request("main.demo.localhost")
        assert status == 502 and b"its memory cap killed it" in body, body
    finally:
        proxy.stop()
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\nmemory = "96m"\ncpus = 1\n')
    assert dual("up", cwd=repo).returncode == 0
    again = docker.request("GET", f"/containers/{name}/json").json()
    assert again["Id"] == info["Id"]  # the same container, updated live
    assert (again["HostConfig"]["Memory"], again["HostConfig"]["NanoCpus"]) == (96 << 20, 1_000_000_000)


def test_past_max_running_the_least_recently_used_idle_branch_sleeps(
        repo: Path, docker: DockerAPI, tmp_path: Path, git_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (git_env / ".config" / "dualgit").mkdir(parents=True)
    (git_env / ".config" / "dualgit" / "config.toml").write_text("max_running = 1\n")
    monkeypatch.setenv("DUALGIT_CAP_IDLE", "1")
    site(repo, "main\n")
    assert dual("up", cwd=repo).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        feat = add_worktree(repo, "demo-feat", "feat")
        site(feat, "feat\n")
        assert dual("up", cwd=feat).returncode == 0
        wait_for(lambda: state(repo) == "asleep", timeout=30)  # main was used least recently
        assert state(feat) == "running"
        wait_for(lambda: request("main.demo.localhost")[2] == b"main\n", timeout=30)  # feat sleeps for it
        wait_for(lambda: state(feat) == "asleep", timeout=30)
        # both busy: both run, and the cap being exceeded is said
        busy = subprocess.Popen(["git", "dual", "exec", "sleep", "8"], cwd=feat)
        try:
            wait_for(lambda: state(feat) == "running", timeout=30)
            held = subprocess.Popen(["git", "dual", "exec", "sleep", "6"], cwd=repo)
            time.sleep(3)
            text = dual("ls", cwd=repo).stdout
            assert "over max_running = 1" in text, text
            assert row(repo)["over_max_running"] == {"running": 2, "max_running": 1}
            assert "max_running = 1 exceeded" in open(tmp_path / "proxy.log").read()
            said = json.loads(dual("proxy", "status", "--json", cwd=repo).stdout)["cap_exceeded"]
            assert said.startswith("max_running = 1 exceeded"), said
            held.wait(30)
        finally:
            busy.wait(30)
    finally:
        proxy.stop()
