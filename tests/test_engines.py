"""Finding the engine as the docker CLI does: a context (named by DOCKER_CONTEXT, or chosen with
`docker context use`) on a socket of its own, and a clear error for what dualgit cannot speak.
The context's socket is a relay to the real engine that counts its connections, so a test fails
when dualgit quietly falls back to the default socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import dual
from dualgit.engine.api import DockerAPI


class Relay:
    """A unix socket whose every connection is piped to `target`, the real engine's socket."""

    def __init__(self, path: Path, target: str) -> None:
        self.path, self.target, self.connections = path, target, 0
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def relay(tmp_path: Path, docker: DockerAPI, monkeypatch: pytest.MonkeyPatch) -> Relay:
    if docker.family != socket.AF_UNIX:
        pytest.skip("the engine here is not on a unix socket")
    made = Relay(tmp_path / "relay.sock", docker.address)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    subprocess.run(["docker", "context", "create", "relay", "--docker", f"host=unix://{made.path}"], check=True,
                   capture_output=True)
    return made


def doctor(cwd: Path, **env: str) -> tuple[int, dict[str, object]]:
    ran = dual("doctor", "--json", cwd=cwd, env=env)
    return ran.returncode, json.loads(ran.stdout)


def test_a_context_named_by_docker_context_is_the_engine(repo: Path, relay: Relay) -> None:
    code, found = doctor(repo, DOCKER_CONTEXT="relay")
    assert code == 0 and found["reachable"] is True, found
    assert found["endpoint"] == f"unix://{relay.path}" and found["source"] == "from the context relay"
    before = relay.connections
    assert dual("up", cwd=repo, env={"DOCKER_CONTEXT": "relay"}).returncode == 0
    ran = dual("exec", "echo", "through the context", cwd=repo, env={"DOCKER_CONTEXT": "relay"})
    assert ran.returncode == 0 and ran.stdout == "through the context\n"
    assert relay.connections > before  # not the default socket, which also reaches this engine


def test_the_context_the_cli_uses_is_the_engine(repo: Path, relay: Relay) -> None:
    subprocess.run(["docker", "context", "use", "relay"], check=True, capture_output=True)
    code, found = doctor(repo)
    assert code == 0 and found["endpoint"] == f"unix://{relay.path}", found
    before = relay.connections
    assert dual("ls", cwd=repo).returncode == 0 and relay.connections > before
    subprocess.run(["docker", "context", "use", "default"], check=True, capture_output=True)
    code, found = doctor(repo)
    assert code == 0 and found["endpoint"] != f"unix://{relay.path}"


def test_engines_dualgit_cannot_reach_get_one_line_that_says_how(repo: Path, tmp_path: Path) -> None:
    home_ca = tmp_path / "home" / ".docker" / "ca.pem"
    cases = {
        "tls": ({"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1"},
                f"error: DOCKER_TLS_VERIFY asks for a checked TLS engine, and {home_ca} is not there"),
        "ssh": ({"DOCKER_HOST": "ssh://me@build-box.invalid"}, "error: cannot reach the engine at ssh://me@build-box.invalid"),
        "odd": ({"DOCKER_HOST": "npipe:////./pipe/docker_engine"}, "error: DOCKER_HOST=npipe:"),
        "no context": ({"DOCKER_CONTEXT": "nowhere"}, "error: the Docker context 'nowhere' is not there"),
    }
    for name, (env, said) in cases.items():
        ran = dual("exec", "true", cwd=repo, env={"DOCKER_HOST": "", **env})
        lines = ran.stderr.splitlines()
        assert ran.returncode == 1 and lines[0].startswith(said) and lines[1].startswith("hint: "), (name, ran.stderr)
        assert len(lines) == 2 and "Traceback" not in ran.stderr, name
    gone = tmp_path / "no-engine.sock"
    code, found = doctor(repo, DOCKER_HOST=f"unix://{gone}")
    assert code == 1 and found["reachable"] is False and str(gone) in str(found["error"]), found
    assert found["source"] == "from DOCKER_HOST" and found["env"] == {"DOCKER_HOST": f"unix://{gone}"}
    text = dual("doctor", cwd=repo, env={"DOCKER_HOST": f"unix://{gone}"})
    assert text.returncode == 1 and "FAIL engine: does not answer" in text.stdout and "fix:" in text.stdout


def test_doctor_names_the_engine_that_answers(repo: Path, docker: DockerAPI) -> None:
    code, found = doctor(repo)
    assert code == 0 and found["reachable"] is True
    server = found["server"]
    assert isinstance(server, dict) and server["apiversion"] and server["os"] == "linux"
    checks = {c["name"]: c for c in found["checks"]}  # type: ignore[attr-defined]
    assert [n for n, c in checks.items() if c["ok"] is not True] == [], checks
    assert checks["bind mount"]["detail"] == f"a container sees {repo.resolve()}'s files"
    assert checks["published port"]["detail"].startswith("a port published on 127.0.0.1:")
    assert not labelled_by_doctor(docker)  # its throwaway container is gone
    assert any(s["path"] == docker.address for s in found["sockets"]) or not os.path.exists(str(docker.address))


def labelled_by_doctor(docker: DockerAPI) -> list[str]:
    return [c["Id"] for c in docker.containers({"label": ["dualgit.doctor"]})]


def test_with_no_answer_on_the_default_socket_the_first_socket_that_answers_is_the_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's default first; then, in the README's order, a socket that answers (a socket file
    left behind by an engine that stopped is passed over)."""
    from dualgit.engine import find

    for key in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(find, "DEFAULT_SOCKET", str(tmp_path / "no-docker.sock"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    home = Path(os.environ["HOME"])
    listeners = []

    def listen(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.listen()
        listeners.append(server)

    try:
        gone = home / ".docker" / "run" / "docker.sock"  # Docker Desktop's, left behind by a stopped one
        listen(gone)
        listeners.pop().close()
        listen(tmp_path / "run" / "podman" / "podman.sock")
        assert find.endpoint().source == "the Podman socket found"
        listen(home / ".colima" / "default" / "docker.sock")
        chosen = find.endpoint()
        assert (chosen.address, chosen.source) == (str(home / ".colima" / "default" / "docker.sock"),
                                                   "the colima socket found")
        assert [engine for engine, path in find.candidates() if os.path.exists(path)] == ["Docker Desktop", "colima",
                                                                                          "Podman"]
        listen(tmp_path / "no-docker.sock")  # a default socket that exists, and then stops answering
        assert find.endpoint().source == "the default socket"
        listeners.pop().close()
        client = DockerAPI()
        client.connect().close()
        assert client.endpoint.source == "the colima socket found"
        assert find.settled(find.endpoint()).source == "the colima socket found"
    finally:
        for server in listeners:
            server.close()
