"""The agent in every container: a server on loopback inside answers at its URL, `serve` is the
branch's dev server (started after setup and on every start, restarted with backoff, said in
`ls`), and nothing the container writes to its state folder is followed by the host."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import PORT, add_worktree, dual, git, need_image, write_config
from dualgit.engine.api import DockerAPI
from dualgit.worktrees import agent
from test_proxy_e2e import Proxy, request
from tests_support import wait_for

DEBIAN = "dualgit/debian:bookworm"


def row(tree: Path) -> dict[str, object]:
    rows = json.loads(dual("ls", "--json", cwd=tree).stdout)
    return next(r for r in rows if r["worktree"] == str(tree.resolve()))


def serve_detail(tree: Path) -> str:
    serve = row(tree)["serve"]
    assert isinstance(serve, list)
    return ", ".join(s["detail"] for s in serve)


def test_servers_on_loopback_answer_at_their_url_and_the_relay_never_holds_the_port(
        repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    """busybox httpd on 127.0.0.1, and Python's http.server on 127.0.0.1 in the Debian image; the
    same port bound on 0.0.0.0 afterwards still binds (the relay has its own port), and with
    nothing listening the 502 page stays."""
    need_image(docker, DEBIAN)
    (repo / "www").mkdir()
    (repo / "www" / "index.html").write_text("on loopback\n")
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\n')
    feat = add_worktree(repo, "demo-py", "feat/py")
    write_config(feat, f'image = "{DEBIAN}"\nports = [{PORT}]\n')
    for tree in (repo, feat):
        assert dual("up", cwd=tree).returncode == 0
    assert dual("exec", "httpd", "-p", f"127.0.0.1:{PORT}", "-h", str(repo / "www"), cwd=repo).returncode == 0
    (feat / "page").mkdir()
    (feat / "page" / "index.html").write_text("python on loopback\n")
    served = f"nohup python3 -m http.server --bind 127.0.0.1 --directory page {PORT} >/dev/null 2>&1 &"
    assert dual("exec", "sh", "-c", served, cwd=feat).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        wait_for(lambda: request("main.demo.localhost")[2] == b"on loopback\n")
        wait_for(lambda: request("feat-py.demo.localhost")[2] == b"python on loopback\n")
        assert agent.listening(str(row(repo)["container"])).get(PORT) == "loop"
        # the loopback server goes; one on 0.0.0.0:3000 binds and is reached the usual way
        assert dual("exec", "sh", "-c", "pkill httpd || killall httpd", cwd=repo).returncode == 0
        wait_for(lambda: request("main.demo.localhost")[0] == 502)  # nothing listens: the page stays
        assert dual("exec", "httpd", "-p", f"0.0.0.0:{PORT}", "-h", str(repo / "www"), cwd=repo).returncode == 0
        wait_for(lambda: request("main.demo.localhost")[2] == b"on loopback\n")
        wait_for(lambda: agent.listening(str(row(repo)["container"])).get(PORT) == "wild")
    finally:
        proxy.stop()


def test_serve_starts_after_setup_survives_a_restart_and_is_said_in_ls(repo: Path, docker: DockerAPI,
                                                                       tmp_path: Path) -> None:
    (repo / "www").mkdir()
    (repo / "www" / "index.html").write_text("served\n")
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\nserve = "httpd -f -p 127.0.0.1:$PORT -h www"\n'
                       'setup = ["sleep 2"]\n')
    proxy = Proxy(repo, tmp_path / "proxy.log")
    assert dual("up", cwd=repo).returncode == 0
    proxy.start()
    try:
        status, headers, body = request("main.demo.localhost")  # setup runs: a page that names its step
        assert status == 503 and headers["retry-after"] == "1" and b"setup is running" in body, body
        assert b"http-equiv=refresh" in body
        wait_for(lambda: serve_detail(repo) == f"listening on :{PORT}", timeout=30)
        assert request("main.demo.localhost")[2] == b"served\n"
        name = str(row(repo)["container"])
        subprocess.run(["docker", "restart", "-t", "1", name], check=True, capture_output=True)
        wait_for(lambda: request("main.demo.localhost")[2] == b"served\n", timeout=30)  # no command run
        assert dual("serve", "--stop", cwd=repo).returncode == 0
        assert serve_detail(repo) == "stopped"
        assert dual("serve", "--restart", cwd=repo).returncode == 0
        wait_for(lambda: serve_detail(repo) == f"listening on :{PORT}")
        said = dual("serve", "--json", cwd=repo)
        assert json.loads(said.stdout)[0]["state"] == "running"
        logs = dual("logs", "--serve", cwd=repo)
        assert logs.returncode == 0 and logs.stdout.count("==> ") >= 3, logs.stdout  # three starts
    finally:
        proxy.stop()


def test_a_serve_whose_program_is_missing_is_said_and_not_retried_forever(repo: Path, docker: DockerAPI) -> None:
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\nserve = "no-such-server --port $PORT"\n')
    assert dual("up", cwd=repo).returncode == 0
    wait_for(lambda: "exited 127 (command not found)" in serve_detail(repo), timeout=20)
    wait_for(lambda: "crash loop" in serve_detail(repo), timeout=60)
    text = dual("ls", cwd=repo).stdout
    assert "exited 127 (command not found), crash loop: not restarted" in text
    assert "no-such-server: not found" in text  # its last lines
    logs = dual("logs", "--serve", cwd=repo)
    assert logs.returncode == 1 and "no-such-server: not found" in logs.stdout
    starts = dual("logs", "--serve", cwd=repo).stdout.count("==> 20")
    assert starts == 5  # the agent writes `crashloop` once it has stopped restarting, so no more can follow
    undeclared = dual("exec", "httpd", "-p", "5173", "-h", "/tmp", cwd=repo)
    assert undeclared.returncode == 0
    wait_for(lambda: row(repo)["undeclared"] == [5173])
    for command in (("ls",), ("urls",), ("doctor",)):
        assert "`git dual config add ports 5173`, then `git dual up`" in dual(*command, cwd=repo).stdout, command


def test_bad_serve_values_name_file_line_and_column(repo: Path) -> None:
    for text, said in (('serve = 3\n', ".dual.toml:2:9: `serve` must be a command"),
                       ('ports = [3000]\n[serve]\n4000 = "x"\n', ".dual.toml:4:8: `serve.4000` must be a declared port")):
        write_config(repo, 'image = "busybox:latest"\n' + text)
        ran = dual("up", cwd=repo)
        assert ran.returncode != 0 and said in ran.stderr.splitlines()[0], ran.stderr


def test_the_host_never_writes_through_a_symlink_the_container_planted(repo: Path, docker: DockerAPI,
                                                                       tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("mine\n")
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\nserve = "sleep 1000"\n')
    assert dual("up", cwd=repo).returncode == 0
    folder = Path(agent.folder(str(row(repo)["container"])))
    wait_for(lambda: (folder / "serve" / f"{PORT}.state").exists())
    # what a hostile container could do in its state folder: links to the host user's files
    assert dual("exec", "sh", "-c", f"rm -rf /.dualgit/state/serve.d && ln -s {tmp_path} /.dualgit/state/serve.d && "
                f"ln -sf {victim} /.dualgit/state/serve.want", cwd=repo).returncode == 0
    dual("serve", "--stop", cwd=repo)
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\nserve = "sleep 2000"\n')
    dual("up", cwd=repo)
    assert victim.read_text() == "mine\n"
    assert not [p for p in tmp_path.iterdir() if p.name == str(PORT) or p.name.startswith(f".{PORT}")]


pytestmark = pytest.mark.docker


def test_a_new_worktree_with_serve_answers_at_its_url_with_no_further_command(repo: Path, docker: DockerAPI,
                                                                               tmp_path: Path) -> None:
    (repo / "www").mkdir()
    (repo / "www" / "index.html").write_text("from the branch\n")
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\nserve = "httpd -f -p 127.0.0.1:$PORT -h www"\n')
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "serve", cwd=repo)
    assert dual("install", cwd=repo).returncode == 0
    add_worktree(repo, "demo-new", "feat/new")  # the hook, and nothing else
    proxy = Proxy(repo, tmp_path / "proxy.log")  # the daemon, as the hook would start it, in the foreground here
    proxy.start()
    try:
        wait_for(lambda: request("feat-new.demo.localhost")[2] == b"from the branch\n", timeout=30)
    finally:
        proxy.stop()
    new = repo.parent / "demo-new"
    folder = Path(agent.folder(str(row(new)["container"])))
    assert (folder / "listen").exists()
    assert dual("rm", "--force", str(new), cwd=repo).returncode == 0
    assert not folder.exists()  # its state folder went with it


def test_up_gives_a_changed_serve_its_new_command(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    for folder, text in (("old", "old page\n"), ("new", "new page\n")):
        (repo / folder).mkdir()
        (repo / folder / "index.html").write_text(text)
    serve = f'image = "busybox:latest"\nports = [{PORT}]\nserve = "httpd -f -p 127.0.0.1:$PORT -h {{}}"\n'
    write_config(repo, serve.format("old"))
    assert dual("up", cwd=repo).returncode == 0
    first = docker.inspect_container(str(row(repo)["container"]))["Id"]
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        wait_for(lambda: request("main.demo.localhost")[2] == b"old page\n", timeout=30)
        write_config(repo, serve.format("new"))
        assert dual("up", cwd=repo).returncode == 0
        wait_for(lambda: request("main.demo.localhost")[2] == b"new page\n", timeout=30)
        assert docker.inspect_container(str(row(repo)["container"]))["Id"] == first  # only its server is new
    finally:
        proxy.stop()
