"""Branches on an engine on another machine (`engines.RemoteEngine`: a second dockerd with its own
filesystem and network, where the worktrees' folder is empty), reached over ssh and over TCP with
TLS: the worktree's files synced both ways into volumes there, its ports forwarded here, its
page at its URL through the proxy here, and nothing left there once it is removed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import PORT, dual, git, stop_processes_of, write_config
from dualgit.engine.api import DockerAPI
from dualgit.engine.find import Endpoint
from engines import RemoteEngine
from test_browser import NODE_IMAGE, app
from test_proxy_e2e import Proxy, request
from tests_support import wait_for


@pytest.fixture(scope="session")
def remote(engine: DockerAPI) -> Iterator[RemoteEngine]:
    machine = RemoteEngine(["busybox:latest"])
    yield machine
    machine.close()


@pytest.fixture
def on_remote(remote: RemoteEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerAPI]:
    """The remote engine over ssh for every command of the test (its API, for the test's own
    checks, through its socket); what the test made there removed afterwards, its sync
    processes ended."""
    monkeypatch.setenv("DOCKER_HOST", remote.ssh_host)
    monkeypatch.setenv("PATH", f"{remote.bin}{os.pathsep}{os.environ['PATH']}")
    api = DockerAPI(Endpoint("unix", remote.socket, "the tests"))
    yield api
    end_sync_processes(tmp_path)
    from dualgit.proxy import daemon

    daemon.stop()
    for container in api.containers({"label": ["dualgit.repo"]}):
        if container["Labels"]["dualgit.repo"].startswith(str(tmp_path)):
            api.request("DELETE", f"/containers/{container['Id']}", query={"force": 1, "v": 1}, ok=(204, 404))
    for volume in api.volumes({"label": ["dualgit.repo"]}):
        if (volume.get("Labels") or {})["dualgit.repo"].startswith(str(tmp_path)):
            api.request("DELETE", f"/volumes/{volume['Name']}", ok=(204, 404))


def a_page(repo: Path, page: str, more: str = "") -> None:
    """dualgit installed in `repo`, whose committed config serves www/index.html (`page`) with
    busybox httpd; `more`: further lines of its config."""
    assert dual("install", cwd=repo).returncode == 0
    (repo / "www").mkdir()
    (repo / "www" / "index.html").write_text(page)
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\nserve = "httpd -f -p {PORT} -h www"\n{more}')
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "a page", cwd=repo)


def end_sync_processes(base: Path) -> None:
    stop_processes_of(base, lambda argv: b"sync-run" in argv)


def row_of(tree: Path) -> dict:  # type: ignore[type-arg]
    return next(r for r in json.loads(dual("ls", "--json", cwd=tree).stdout) if r["worktree"] == str(tree))


def objects_of(api: DockerAPI, tree: Path) -> tuple[list[str], list[str]]:
    """The remote's containers and volumes labelled for the worktree `tree`."""
    label = {"label": [f"dualgit.worktree={tree}"]}
    return [c["Names"][0] for c in api.containers(label)], [v["Name"] for v in api.volumes(label)]


def test_a_branch_on_a_remote_engine_over_ssh(repo: Path, tmp_path: Path, remote: RemoteEngine,
                                              on_remote: DockerAPI) -> None:
    api = on_remote
    (repo / ".gitignore").write_text("node_modules/\n")
    a_page(repo, "page of feat\n")
    feat = repo.parent / "demo-feat"
    began = time.monotonic()
    added = subprocess.run(["git", "worktree", "add", "-q", str(feat), "-b", "feat"], cwd=repo, capture_output=True,
                           text=True)
    took = time.monotonic() - began
    assert added.returncode == 0 and "in the background" in added.stderr, added.stderr
    assert took < 5, took  # no round trip to the engine waited for (a loose bound: any would take seconds)
    assert remote.inside("test", "-e", str(feat)).returncode == 1  # no bind mount could show its files there

    # exec waits for the first sync; exit codes and stdin as a local command's
    said = dual("exec", "sh", "-c", "read line; echo got $line; cat www/index.html; pwd", cwd=feat, input="it\n")
    assert said.stdout == f"got it\npage of feat\n{feat}\n", said.stderr
    assert dual("exec", "sh", "-c", "exit 42", cwd=feat).returncode == 42
    missing = dual("exec", "no-such-program", cwd=feat)
    assert (missing.returncode, missing.stderr) == (127, "no-such-program: command not found\n")
    # a signal reaches the command with no TTY: from inside, as its pid there is not one of this machine's
    waiting = subprocess.Popen(["git-dual", "exec", "sh", "-c", 'trap "echo got TERM; exit 3" TERM; echo ready; '
                                'while :; do sleep 0.1; done'], cwd=feat, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert waiting.stdout is not None and waiting.stdout.readline() == "ready\n"
    waiting.send_signal(signal.SIGTERM)
    out, err = waiting.communicate(timeout=30)
    assert (waiting.returncode, out) == (3, "got TERM\n"), err
    row = row_of(feat)
    assert (row["engine"], row["sync"]["state"], row["state"]) == (remote.ssh_host, "synced", "running"), row
    container = api.inspect_container(row["container"])
    assert not container["HostConfig"]["Binds"] and not container["HostConfig"]["PortBindings"], container["HostConfig"]
    assert {m["Destination"] for m in container["Mounts"] if m["Type"] == "volume"} >= {str(feat), "/.dualgit/state"}

    # edits, both ways; what stays remote stays there
    (feat / "www" / "index.html").write_text("edited here\n")
    wait_for(lambda: dual("exec", "cat", "www/index.html", cwd=feat).stdout == "edited here\n", timeout=10)
    assert dual("exec", "sh", "-c", "echo made inside > made.txt; mkdir -p node_modules/x; echo 1 > node_modules/x/i",
                cwd=feat).returncode == 0
    wait_for(lambda: (feat / "made.txt").exists() and (feat / "made.txt").read_text() == "made inside\n", timeout=10)
    (feat / "node_modules").mkdir(exist_ok=True)
    (feat / "node_modules" / "here").write_text("host's\n")
    time.sleep(3)  # three rounds of sync
    assert not (feat / "node_modules" / "x").exists()
    assert dual("exec", "test", "-e", "node_modules/here", cwd=feat).returncode == 1
    # git inside reads the repository: its git dir is synced one way, read-only
    pointer = (feat / ".git").read_text()
    assert dual("exec", "cat", ".git", cwd=feat).stdout == pointer
    assert dual("exec", "cat", f"{repo}/.git/worktrees/demo-feat/HEAD", cwd=feat).stdout == "ref: refs/heads/feat\n"
    assert dual("exec", "sh", "-c", f"echo x > {repo}/.git/config", cwd=feat).returncode != 0  # read-only
    # what only the host may write: the container's change is undone, never brought here
    assert dual("exec", "sh", "-c", "echo 'gitdir: /elsewhere' > .git", cwd=feat).returncode == 0
    wait_for(lambda: dual("exec", "cat", ".git", cwd=feat).stdout == pointer, timeout=10)
    assert (feat / ".git").read_text() == pointer

    found = json.loads(dual("doctor", "--json", cwd=feat).stdout)
    assert {c["name"]: c["ok"] for c in found["checks"] if c["name"] in ("unison", "helper", "sync", "forward")} \
        == {"unison": True, "helper": True, "sync": True, "forward": True}, found["checks"]

    # the page at its URL, through the proxy here
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        wait_for(lambda: request("feat.demo.localhost", "/index.html")[2] == b"edited here\n", timeout=30)
    finally:
        proxy.stop()

    # removed: the container, its helper and its volumes there
    git("worktree", "remove", "--force", str(feat), cwd=repo)
    assert dual("gc", cwd=repo).returncode == 0
    assert objects_of(api, feat) == ([], [])


def test_a_conflict_keeps_both_and_a_lost_engine_pauses_the_sync(repo: Path, remote: RemoteEngine,
                                                                 on_remote: DockerAPI) -> None:
    assert dual("install", cwd=repo).returncode == 0
    feat = repo.parent / "demo-feat"
    git("worktree", "add", "-q", str(feat), "-b", "feat", cwd=repo)
    assert dual("exec", "sh", "-c", "echo base > notes.txt", cwd=feat).returncode == 0
    wait_for(lambda: (feat / "notes.txt").exists(), timeout=10)

    remote.cut_ssh()  # the engine out of reach, mid-sync
    try:
        wait_for(lambda: row_of(feat)["sync"]["state"] == "sync paused", timeout=30)
        (feat / "notes.txt").write_text("written here\n")
        (feat / "only-here.txt").write_text("while away\n")
        there = remote.inside("docker", "exec", row_of(feat)["container"], "sh", "-c", f"echo written there > {feat}/notes.txt")
        assert there.returncode == 0, there.stderr
        assert "sync paused" in dual("ls", cwd=feat).stdout
    finally:
        remote.restore_ssh()
    wait_for(lambda: row_of(feat)["sync"]["state"] == "synced", timeout=60)
    wait_for(lambda: dual("exec", "cat", "only-here.txt", cwd=feat).stdout == "while away\n", timeout=15)
    copies = wait_for(lambda: [p for p in feat.iterdir() if p.name.startswith("notes (conflict_on_")], timeout=15)
    both = {(feat / "notes.txt").read_text(), copies[0].read_text()}
    assert both == {"written here\n", "written there\n"}, both
    wait_for(lambda: sorted(dual("exec", "sh", "-c", "cat notes*", cwd=feat).stdout.splitlines())
             == ["written here", "written there"], timeout=10)
    wait_for(lambda: row_of(feat)["sync"]["conflicts"] == [copies[0].name], timeout=5)  # read from unison's output
    assert f"edited on both sides, both kept: {copies[0].name}" in dual("ls", cwd=feat).stdout


def test_a_helper_of_another_version_is_replaced(repo: Path, remote: RemoteEngine, on_remote: DockerAPI) -> None:
    api = on_remote
    assert dual("install", cwd=repo).returncode == 0
    feat = repo.parent / "demo-feat"
    git("worktree", "add", "-q", str(feat), "-b", "feat", cwd=repo)
    assert dual("exec", "true", cwd=feat).returncode == 0
    name = row_of(feat)["container"]
    helper = api.inspect_container(f"{name}-sync")
    end_sync_processes(repo.parent)
    wait_for(lambda: row_of(feat)["sync"]["state"] == "sync paused")
    api.request("DELETE", f"/containers/{helper['Id']}", query={"force": 1}, ok=(204,))
    stale = {**helper["Config"]["Labels"], "dualgit.sync": "another-version"}
    api.create_container({"Image": "busybox:latest", "Cmd": ["sleep", "600"], "Labels": stale}, f"{name}-sync")
    said = {c["name"]: c for c in json.loads(dual("doctor", "--json", cwd=feat).stdout)["checks"]}
    assert said["helper"]["ok"] is False and "replaced, not used" in said["helper"]["detail"], said
    assert said["sync"]["ok"] is False and "git dual up" in said["sync"]["fix"], said
    (feat / "after.txt").write_text("synced by the new helper\n")
    assert dual("exec", "cat", "after.txt", cwd=feat).stdout == "synced by the new helper\n"
    assert api.inspect_container(f"{name}-sync")["Config"]["Labels"]["dualgit.sync"] == helper["Config"]["Labels"]["dualgit.sync"]


def test_a_branch_on_a_remote_engine_over_tls(repo: Path, remote: RemoteEngine, on_remote: DockerAPI,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", remote.tls.host)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(remote.tls.certs))
    config = Path(os.environ["HOME"]) / ".config" / "dualgit" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('files = "sync"\n')  # TCP to 127.0.0.1 reads as this machine's engine: said so
    assert dual("install", cwd=repo).returncode == 0
    feat = repo.parent / "demo-feat"
    git("worktree", "add", "-q", str(feat), "-b", "feat", cwd=repo)
    assert dual("exec", "cat", "README", cwd=feat).stdout == "demo\n"
    assert dual("exec", "sh", "-c", "echo back > back.txt", cwd=feat).returncode == 0
    wait_for(lambda: (feat / "back.txt").exists(), timeout=10)
    assert row_of(feat)["engine"] == remote.tls.host
    git("worktree", "remove", "--force", str(feat), cwd=repo)
    assert dual("gc", cwd=repo).returncode == 0
    assert objects_of(on_remote, feat) == ([], [])


def test_a_remote_branch_s_compose_service_gets_its_binds(repo: Path, remote: RemoteEngine,
                                                         on_remote: DockerAPI) -> None:
    """A bind of a path here would show an empty folder there: the worktree's root is its synced
    volume (live), and a file or folder in it is copied in as the service is made, anew on `up`
    once it changed."""
    assert dual("install", cwd=repo).returncode == 0
    (repo / "site").mkdir()
    (repo / "site" / "index.html").write_text("served by a service\n")
    (repo / "conf.txt").write_text("a setting\n")
    (repo / "compose.yaml").write_text("services:\n  web:\n    image: busybox:latest\n    command: sleep 1000\n"
                                       "    volumes: ['./site:/srv:ro', './conf.txt:/etc/app/conf.txt', '.:/app']\n")
    write_config(repo, 'image = "busybox:latest"\ncompose = ["compose.yaml"]\n')
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "a service with binds", cwd=repo)
    feat = repo.parent / "demo-feat"
    git("worktree", "add", "-q", str(feat), "-b", "feat", cwd=repo)
    assert dual("exec", "true", cwd=feat).returncode == 0  # setup, services and all

    def web(*argv: str) -> str:
        return dual("exec", "--service", "web", "--", *argv, cwd=feat).stdout

    assert web("cat", "/srv/index.html", "/etc/app/conf.txt", "/app/conf.txt") == \
        "served by a service\na setting\na setting\n"
    (feat / "conf.txt").write_text("changed\n")
    wait_for(lambda: web("cat", "/app/conf.txt") == "changed\n", timeout=10)  # the synced root: live
    assert web("cat", "/etc/app/conf.txt") == "a setting\n"  # a copy, until the service is made anew
    assert dual("up", cwd=feat).returncode == 0
    wait_for(lambda: web("cat", "/etc/app/conf.txt") == "changed\n", timeout=30)


def test_a_remote_branch_sleeps_and_its_request_wakes_it(repo: Path, tmp_path: Path, remote: RemoteEngine,
                                                         on_remote: DockerAPI) -> None:
    a_page(repo, "awake\n", 'idle_after = "3s"\n')
    feat = repo.parent / "demo-feat"
    git("worktree", "add", "-q", str(feat), "-b", "feat", cwd=repo)
    assert dual("exec", "true", cwd=feat).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        wait_for(lambda: request("feat.demo.localhost")[2] == b"awake\n", timeout=30)
        wait_for(lambda: row_of(feat)["state"] == "asleep", timeout=30)
        assert on_remote.inspect_container(row_of(feat)["container"])["State"]["Running"] is False
        assert request("feat.demo.localhost")[2] == b"awake\n"  # held while it wakes, then answered
        assert row_of(feat)["state"] == "running"
    finally:
        proxy.stop()


def test_vite_hmr_on_a_remote_branch_in_chromium(repo: Path, tmp_path: Path, remote: RemoteEngine,
                                                on_remote: DockerAPI, vite_modules: Path, browser: object) -> None:
    """Vite as `npm run dev` starts it (on loopback inside), on the remote engine: its page at its
    URL here, and an edit here reaching it through HMR (a WebSocket through the forward)."""
    remote.load(NODE_IMAGE)
    assert dual("install", cwd=repo).returncode == 0
    feat = repo.parent / "demo-feat"
    git("worktree", "add", "-q", str(feat), "-b", "feat", cwd=repo)
    app(feat, "feat", vite_modules, f"npm run dev -- --port {PORT}")
    with open(feat / ".dual.toml", "a") as f:
        f.write("remote_only = []\n")  # its node_modules go there too: the remote has no registry
    assert dual("up", cwd=feat).returncode == 0
    assert dual("serve", "--restart", cwd=feat).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log", port=PORT)
    proxy.start()
    try:
        wait_for(lambda: "listening on" in dual("serve", cwd=feat).stdout, timeout=120)
        tab = browser.new_page()  # type: ignore[attr-defined]
        tab.goto(f"http://feat.demo.localhost:{PORT}/")
        tab.wait_for_function("document.querySelector('#title').textContent === 'hello from feat'", timeout=30_000)
        tab.click("#more")
        tab.evaluate("window.__kept = 'no reload'")
        (feat / "message.js").write_text('export const message = "edited on the laptop";\n')
        tab.wait_for_function("document.querySelector('#title').textContent === 'edited on the laptop'",
                              timeout=20_000)
        assert tab.evaluate("window.__kept") == "no reload"  # HMR, not a reload
        assert tab.text_content("#count") == "1"
    finally:
        proxy.stop()


def docker_context(config: Path, name: str, host: str) -> None:
    """A Docker context as `docker context create NAME --docker host=HOST` writes it."""
    folder = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"Name": name, "Metadata": {},
                                                  "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))


def test_one_repository_on_two_engines(repo: Path, tmp_path: Path, remote: RemoteEngine, on_remote: DockerAPI,
                                       docker: DockerAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Heavy branches on the remote (a user's rule names its Docker context), light ones here: each
    command finds each branch's container where it was made, `ls` names each one's engine, the
    proxy serves both, and removing them leaves nothing on either engine."""
    monkeypatch.delenv("DOCKER_HOST")  # the default: this machine's engine
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    docker_context(tmp_path / "docker-config", "devbox", remote.ssh_host)
    user = Path(os.environ["HOME"]) / ".config" / "dualgit" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[[engines]]\nrepo = "demo"\nbranch = "heavy/*"\nengine = "devbox"\n')
    a_page(repo, "a page\n", 'cache_dirs = [".cache"]\n')
    light, heavy = repo.parent / "demo-light", repo.parent / "demo-heavy"
    git("worktree", "add", "-q", str(light), "-b", "light", cwd=repo)
    git("worktree", "add", "-q", str(heavy), "-b", "heavy/x", cwd=repo)
    for tree in (light, heavy):
        (tree / "www" / "index.html").write_text(f"page of {tree.name}\n")
        said = dual("exec", "sh", "-c", "cat www/index.html; exit 42", cwd=tree)
        assert (said.returncode, said.stdout) == (42, f"page of {tree.name}\n"), said.stderr
    assert objects_of(on_remote, heavy)[0] and not objects_of(on_remote, light)[0]
    assert objects_of(docker, light)[0] and not objects_of(docker, heavy)[0]
    rows = {r["branch"]: r for r in json.loads(dual("ls", "--json", cwd=repo).stdout)}
    assert (rows["heavy/x"]["engine_name"], rows["heavy/x"]["engine"]) == ("devbox", remote.ssh_host), rows
    assert (rows["light"]["engine_name"], rows["light"]["state"], rows["light"]["sync"]) == ("default", "running", None)
    assert rows["heavy/x"]["state"] == "running" and rows["heavy/x"]["sync"]["state"] == "synced"
    table = dual("ls", cwd=repo).stdout
    assert "ENGINE" in table and "devbox" in table.split("heavy/x", 1)[1].splitlines()[0], table
    for tree, named, url in ((heavy, "devbox", remote.ssh_host), (light, "default", None)):
        found = json.loads(dual("doctor", "--json", cwd=tree).stdout)  # each branch's own engine
        assert found["engine_name"] == named and (url is None or found["endpoint"] == url), found
        assert all(c["ok"] for c in found["checks"] if c["name"] != "proxy"), found["checks"]

    # the config now names another engine for light: it stays where it is, and `up` says how to move it
    with open(light / ".dual.toml", "a") as f:
        f.write('engine = "devbox"\n')
    up = dual("up", cwd=light)
    assert up.returncode == 0 and "stays on the engine default" in up.stderr and "git dual down --rm" in up.stderr, up.stderr
    assert objects_of(docker, light)[0] and not objects_of(on_remote, light)[0]
    config = (light / ".dual.toml").read_text()
    (light / ".dual.toml").write_text(config.replace('"devbox"', '"ssh://elsewhere"'))  # only the user's file may
    bad = dual("up", cwd=light)
    assert bad.returncode != 0 and "may only name an engine you named yourself" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 2, bad.stderr

    proxy = Proxy(repo, tmp_path / "proxy.log")
    proxy.start()
    try:
        for host, page in (("light.demo.localhost", b"page of demo-light\n"),
                           ("heavy-x.demo.localhost", b"page of demo-heavy\n")):
            wait_for(lambda host=host, page=page: request(host, "/index.html")[2] == page, timeout=30)
        remote.cut_ssh()  # one engine out of reach: the other's branches listed and served as they are
        try:
            said = dual("ls", "--json", cwd=repo)
            rows = {r["branch"]: r for r in json.loads(said.stdout)}
            assert (rows["light"]["state"], rows["heavy/x"]["state"]) == ("running", "unreachable"), rows
            assert said.returncode == 1 and "the engine devbox does not answer" in said.stderr, said.stderr
            assert dual("exec", "echo", "here", cwd=light).stdout == "here\n"
            wait_for(lambda: "engine: the engine devbox" in (tmp_path / "proxy.log").read_text(), timeout=30)
            assert request("light.demo.localhost", "/index.html")[2] == b"page of demo-light\n"
        finally:
            remote.restore_ssh()
    finally:
        proxy.stop()

    # moved: made anew on the engine its config names; its volumes here stay, and it says how to remove them
    (light / ".dual.toml").write_text(config)
    assert dual("down", "--rm", cwd=light).returncode == 0
    moved = dual("up", cwd=light)
    assert moved.returncode == 0 and "its volumes on the engine default stay there" in moved.stderr, moved.stderr
    assert "`docker volume rm " in moved.stderr, moved.stderr
    assert objects_of(on_remote, light)[0] and not objects_of(docker, light)[0]
    assert dual("exec", "cat", "www/index.html", cwd=light).stdout == "page of demo-light\n"
    assert row_of(light)["engine_name"] == "devbox"
    leftover = objects_of(docker, light)[1]
    subprocess.run(["docker", "volume", "rm", *leftover], capture_output=True, check=True,
                   env={k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")})

    for tree in (light, heavy):
        git("worktree", "remove", "--force", str(tree), cwd=repo)
    assert dual("gc", cwd=repo).returncode == 0
    assert objects_of(on_remote, heavy) == ([], []) and objects_of(docker, light) == ([], [])
