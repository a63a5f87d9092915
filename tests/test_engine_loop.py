"""The core loop on every kind of engine, not the whole suite: Podman through its Docker API, the
Docker engine behind TLS (from the environment and from a context), and over ssh. Each engine is
a real one, started from Debian's packages (`engines.py`); traffic stays on loopback."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import PORT, dual, git, labelled, write_config
from dualgit.engine.api import DockerAPI
from dualgit.engine.find import DEFAULT_SOCKET, Endpoint
from engines import PodmanService, SshServer, TlsFront
from test_proxy_e2e import Proxy, request
from tests_support import wait_for


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    service = PodmanService(tmp_path_factory.mktemp("podman"))
    yield service
    service.close()


@pytest.fixture(scope="session")
def tls(engine: DockerAPI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsFront]:
    if engine.endpoint.kind != "unix":
        pytest.skip("the TLS front relays to the engine's unix socket")
    front = TlsFront(tmp_path_factory.mktemp("tls"), str(engine.address))
    yield front
    front.close()


@pytest.fixture(scope="session")
def sshd(engine: DockerAPI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    yield server
    server.close()


def hooked(repo: Path) -> None:
    ran = dual("install", cwd=repo)
    assert ran.returncode == 0, ran.stderr


def isolated(api: DockerAPI, container: str) -> str:
    """The network a container joined, checked through the engine's inspect output (never by traffic
    to a private address): one where it reaches no other branch's container. Docker: dualgit's own
    bridge, inter-container traffic off; Podman: a network of its own, isolated from the others."""
    networks = list(api.inspect_container(container)["NetworkSettings"]["Networks"])
    assert len(networks) == 1, networks
    joined = networks[0]
    found = api.inspect_network(joined)
    if joined == "dualgit":
        assert found["Options"]["com.docker.network.bridge.enable_icc"] == "false", found
        assert found["Labels"]["dualgit.network"] == "isolated"
    else:  # Podman with CNI keeps `isolate` as its firewall's ingress policy, which its inspect leaves out
        conflist = Path("/etc/cni/net.d") / f"{joined}.conflist"
        assert (found["Options"].get("isolate") == "true"
                or (conflist.exists() and '"ingressPolicy": "same-bridge"' in conflist.read_text())), found
        assert found["Labels"]["dualgit.worktree"] == api.inspect_container(container)["Config"]["Labels"]["dualgit.worktree"]
    return str(joined)


def core_loop(repo: Path, tmp_path: Path, containers: Callable[[Path], list[str]], page: bool = True) -> None:
    """`git worktree add` makes the container; exec exits 0, 42 and 127 as a local command would;
    a page is served through the proxy; `git worktree remove` takes the container away.
    `containers(path)` lists, with the engine's own tools, the containers labelled for `path`."""
    hooked(repo)
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\n')
    git("commit", "-qam", "a free port", cwd=repo)
    feat = repo.parent / "demo-feat"
    git("worktree", "add", "-q", str(feat), "-b", "feat", cwd=repo)
    assert len(containers(feat)) == 1, "the hook made no container"
    api = DockerAPI()  # the engine under test, as the environment names it
    assert dual("up", cwd=repo).returncode == 0
    own = {isolated(api, containers(tree)[0]) for tree in (feat, repo.resolve())}
    assert own == {"dualgit"} or len(own) == 2, own  # one network with no traffic between, or one each
    assert dual("exec", "true", cwd=feat).returncode == 0
    assert dual("exec", "sh", "-c", "exit 42", cwd=feat).returncode == 42
    missing = dual("exec", "no-such-program", cwd=feat)
    assert (missing.returncode, missing.stderr) == (127, "no-such-program: command not found\n")
    said = dual("exec", "sh", "-c", "read line; echo got $line; pwd", cwd=feat / ".", input="it\n")
    assert said.stdout == f"got it\n{feat}\n"
    rows = json.loads(dual("ls", "--json", cwd=feat).stdout)
    assert [r["state"] for r in rows if r["worktree"] == str(feat)] == ["running"], rows
    built(feat, api)
    serviced(feat, api)
    if page:
        (feat / "www").mkdir()
        (feat / "www" / "index.html").write_text("page of feat\n")
        assert dual("exec", "httpd", "-p", str(PORT), "-h", str(feat / "www"), cwd=feat).returncode == 0
        proxy = Proxy(repo, tmp_path / "proxy.log")
        proxy.start()
        try:
            wait_for(lambda: request("feat.demo.localhost")[2] == b"page of feat\n")
            git("worktree", "remove", "--force", str(feat), cwd=repo)
            wait_for(lambda: not containers(feat), timeout=30)  # the proxy's watcher, with no command
        finally:
            proxy.stop()
    else:
        git("worktree", "remove", "--force", str(feat), cwd=repo)
        assert dual("ls", cwd=repo).returncode == 0  # every run reconciles
        assert not containers(feat)
    gone = {name for name in own - {"dualgit"} if name.startswith("dual-demo-demo-feat-")}
    wait_for(lambda: not gone & {n["Name"] for n in api.get("/networks")}, timeout=30)  # went with its container


def built(feat: Path, api: DockerAPI) -> None:
    """A Dockerfile build by this engine (Podman's builds its own way, behind the same API), its
    image then removed."""
    write_config(feat, f'build = "Dockerfile"\nports = [{PORT}]\n')
    (feat / "Dockerfile").write_text(f"FROM busybox:latest\nRUN echo built-{os.urandom(3).hex()} > /built\n")
    up = dual("up", cwd=feat)
    assert up.returncode == 0, up.stderr
    tag = json.loads(dual("inspect", "--json", cwd=feat).stdout)["image"]
    try:
        assert dual("exec", "cat", "/built", cwd=feat).stdout.startswith("built-")
    finally:
        write_config(feat, f'image = "busybox:latest"\nports = [{PORT}]\n')
        assert dual("up", cwd=feat).returncode == 0
        api.request("DELETE", f"/images/{tag}", query={"force": 1}, ok=(200, 404, 409))


def serviced(feat: Path, api: DockerAPI) -> None:
    """A service of the branch on this engine: in the branch's namespace, at its name, its volume's
    data kept through a stop and start of the branch, its exec and logs."""
    write_config(feat, f'image = "busybox:latest"\nports = [{PORT}]\n[services.web]\nimage = "busybox:latest"\n'
                       'command = "httpd -f -v -p 7001 -h /data"\nports = [7001]\nvolumes = { data = "/data" }\n')
    try:
        up = dual("up", cwd=feat)
        assert up.returncode == 0, up.stderr

        def set_up() -> bool:
            rows = json.loads(dual("ls", "--json", cwd=feat).stdout)
            return any(r["worktree"] == str(feat) and r["setup"] == "done" for r in rows)

        try:
            wait_for(set_up, timeout=60)
        except AssertionError:
            raise AssertionError(f"setup: {dual('logs', cwd=feat).stdout}") from None
        wrote = dual("exec", "--service", "web", "--", "sh", "-c", "echo from-web > /data/index.html", cwd=feat)
        assert wrote.returncode == 0, wrote.stderr
        assert dual("down", cwd=feat).returncode == 0
        got = dual("exec", "wget", "-qO-", "http://web:7001/", cwd=feat)  # woken: the branch, then its service
        assert got.stdout == "from-web\n", got.stderr
        row = next(r for r in json.loads(dual("ls", "--json", cwd=feat).stdout) if r["worktree"] == str(feat))
        service = api.inspect_container(row["services"][0]["container"])
        assert service["HostConfig"]["NetworkMode"].startswith("container:"), service["HostConfig"]
        assert "response:200" in dual("logs", "--service", "web", cwd=feat).stdout  # httpd -v: the wget's
    finally:
        write_config(feat, f'image = "busybox:latest"\nports = [{PORT}]\n')
        assert dual("up", cwd=feat).returncode == 0
        rows = json.loads(dual("ls", "--json", cwd=feat).stdout)
        assert all(not r["services"] for r in rows), rows


def on_docker(path: Path) -> list[str]:
    """Through the default socket, not the engine under test (the same Docker engine)."""
    default = DockerAPI(Endpoint("unix", DEFAULT_SOCKET, "the tests"))
    return [c["Id"] for c in labelled(default, path.parent)[0] if c["Labels"]["dualgit.worktree"] == str(path)]


def test_podman_through_its_docker_api(repo: Path, tmp_path: Path, podman: PodmanService,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", podman.host)
    monkeypatch.setenv("CONTAINERS_CONF", podman.env["CONTAINERS_CONF"])
    try:
        found = json.loads(dual("doctor", "--json", cwd=repo).stdout)
        assert found["reachable"] and found["server"]["name"] == "Podman Engine", found
        core_loop(repo, tmp_path, podman.containers_of)
    finally:
        podman.remove_labelled(tmp_path)


def test_tls_from_the_environment(repo: Path, tmp_path: Path, tls: TlsFront, docker: DockerAPI,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", tls.host)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tls.certs))
    found = json.loads(dual("doctor", "--json", cwd=repo).stdout)
    assert found["reachable"] and found["endpoint"] == tls.host and found["tls"]["cert"] == str(tls.certs / "cert.pem")
    core_loop(repo, tmp_path, on_docker)


def test_tls_from_a_context(repo: Path, tmp_path: Path, tls: TlsFront, docker: DockerAPI,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(key, raising=False)
    certs = tls.certs
    subprocess.run(["docker", "context", "create", "secured", "--docker",
                    f"host={tls.host},ca={certs / 'ca.pem'},cert={certs / 'cert.pem'},key={certs / 'key.pem'}"],
                   check=True, capture_output=True)
    subprocess.run(["docker", "context", "use", "secured"], check=True, capture_output=True)
    found = json.loads(dual("doctor", "--json", cwd=repo).stdout)
    assert found["reachable"] and found["source"] == "from the context secured", found
    assert found["tls"]["from"] == "the context secured's TLS folder"
    core_loop(repo, tmp_path, on_docker, page=False)


def test_wrong_tls_files_are_one_line_naming_the_file(repo: Path, tls: TlsFront, tmp_path: Path) -> None:
    base = {"DOCKER_HOST": tls.host, "DOCKER_TLS_VERIFY": "1"}
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("ca.pem", "cert.pem"):
        (broken / name).write_bytes((tls.certs / name).read_bytes())
    (broken / "key.pem").write_text("not a key\n")
    cases = {
        "a client certificate the engine's CA did not sign": (tls.rogue, f"with the client certificate {tls.rogue}/cert.pem"),
        "a CA that did not sign the engine's certificate": (tls.wrong_ca,
                                                             f"{tls.wrong_ca}/ca.pem (from DOCKER_CERT_PATH) does not vouch"),
        "a key that does not load": (broken, f"the client certificate {broken}/cert.pem with key {broken}/key.pem"),
    }
    for case, (folder, named) in cases.items():
        for command in (("exec", "true"), ("down",)):  # the lean client and docker-py
            ran = dual(*command, cwd=repo, env={**base, "DOCKER_CERT_PATH": str(folder)})
            lines = ran.stderr.splitlines()
            assert ran.returncode == 1 and len(lines) == 2 and named in lines[0], (case, command, ran.stderr)
            assert lines[1].startswith("hint: ") and "Traceback" not in ran.stderr, (case, ran.stderr)


def test_ssh(repo: Path, tmp_path: Path, sshd: SshServer, docker: DockerAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{sshd.bin}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_HOST", sshd.host)
    assert dual("up", cwd=repo).returncode == 0
    ran = dual("exec", "sh", "-c", "cat; exit 42", cwd=repo, input="over ssh\n")
    assert (ran.returncode, ran.stdout) == (42, "over ssh\n")
    missing = dual("exec", "no-such-program", cwd=repo)
    assert (missing.returncode, missing.stderr) == (127, "no-such-program: command not found\n")
    rows = json.loads(dual("ls", "--json", cwd=repo).stdout)
    assert [r["state"] for r in rows] == ["running"]
    found = json.loads(dual("doctor", "--json", cwd=repo).stdout)
    assert found["reachable"] and found["endpoint"] == sshd.host
    assert dual("down", "--rm", cwd=repo).returncode == 0 and not on_docker(repo.resolve())
    monkeypatch.setenv("DOCKER_HOST", "ssh://nobody@127.0.0.1:%d" % sshd.port)
    refused = dual("exec", "true", cwd=repo)
    assert refused.returncode == 1 and "Permission denied" in refused.stderr.splitlines()[0], refused.stderr


def test_a_proxy_for_another_engine_is_said_and_proxy_start_replaces_it(repo: Path, tmp_path: Path,
                                                                          podman: PodmanService, docker: DockerAPI,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUALGIT_PROXY")
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\n')
    try:
        assert dual("proxy", "start", cwd=repo).returncode == 0  # for the default engine
        monkeypatch.setenv("DOCKER_HOST", podman.host)
        monkeypatch.setenv("CONTAINERS_CONF", podman.env["CONTAINERS_CONF"])
        assert dual("up", cwd=repo).returncode == 0
        ran = dual("exec", "true", cwd=repo)
        said = f"dualgit: the proxy serves the engine at unix://{docker.address}, not this command's ({podman.host})"
        assert ran.returncode == 0 and ran.stderr.startswith(said) and len(ran.stderr.splitlines()) == 1, ran.stderr
        found = json.loads(dual("doctor", "--json", cwd=repo).stdout)
        proxy = next(c for c in found["checks"] if c["name"] == "proxy")
        assert proxy["ok"] is False and "`git dual proxy start` replaces it" in proxy["fix"], proxy
        assert dual("proxy", "start", cwd=repo).returncode == 0
        wait_for(lambda: json.loads(dual("proxy", "status", "--json", cwd=repo).stdout).get("engine") == podman.host)
        assert dual("exec", "true", cwd=repo).stderr == ""
    finally:
        dual("proxy", "stop", cwd=repo)
        podman.remove_labelled(tmp_path)
