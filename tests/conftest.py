"""Fixtures: real git in a temporary folder with an isolated HOME, and the real Docker engine.

Every container and volume a test makes carries `dualgit.repo` = a repository under the test's
temporary folder: teardown removes them by that label, and the session fails if any is left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dualgit.engine.api import DockerAPI
from dualgit.errors import DualgitError
from tests_support import LocalRegistry

BIN = Path(sys.executable).parent
IN_CI = bool(os.environ.get("CI"))


def free_port() -> int:
    """A loopback port nothing listens on now, so that the suite passes beside a dualgit proxy that
    holds :3000 (or any port). Drawn below the ones the proxy gives TCP services (20000-29999) and
    the kernel's ephemeral range, where the engine publishes containers' ports."""
    import random
    import socket

    for _ in range(200):
        port = random.randrange(12000, 20000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 12000 and 20000 on 127.0.0.1")


PORT = free_port()  # the HTTP port the proxy tests' containers declare, and so the one their proxy binds


@pytest.fixture(autouse=True)
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(key, "Dual Test")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "dual@example.invalid")
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("DUALGIT_RUNNING", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("DUALGIT_PROXY", "0")  # tests that want the proxy start it themselves
    subprocess.run(["git", "config", "--global", "init.defaultBranch", "main"], check=True)
    subprocess.run(["git", "config", "--global", "advice.detachedHead", "false"], check=True)
    return home


ENGINE_FIXTURES = {"engine", "docker", "podman", "tls", "sshd", "registry"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that asks for an engine carries the `docker` marker, so that `-m "not docker"`
    runs the pure tests alone, with no engine."""
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


def git(*args: str, cwd: Path | str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def dual(*args: str, cwd: Path | str, input: str | bytes | None = None, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`git dual ARGS` as a user types it: through git, which finds `git-dual` on PATH."""
    return subprocess.run(
        ["git", "dual", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        input=input, env={**os.environ, **(env or {})},  # type: ignore[arg-type]
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one commit, in a folder named `demo`, whose `.dual.toml` names the tiny
    local busybox image (tests that need another write their own)."""
    path = tmp_path / "demo"
    path.mkdir()
    git("init", "-q", cwd=path)
    (path / "README").write_text("demo\n")
    (path / ".dual.toml").write_text('image = "busybox:latest"\n')
    git("add", "README", ".dual.toml", cwd=path)
    git("commit", "-q", "-m", "init", cwd=path)
    return path


def _engine_error() -> str | None:
    try:
        DockerAPI().request("GET", "/_ping")
    except DualgitError as exc:
        return exc.message
    except Exception as exc:  # noqa: BLE001 - any answer but pong means no usable engine
        return str(exc)
    return None


@pytest.fixture(scope="session")
def engine() -> DockerAPI:
    problem = _engine_error()
    if problem:
        if IN_CI:
            pytest.fail(f"CI needs a Docker engine: {problem}")
        pytest.skip(f"no Docker engine: {problem}")
    return DockerAPI()


def labelled(api: DockerAPI, under: Path) -> tuple[list[dict], list[dict]]:  # type: ignore[type-arg]
    """Containers and volumes dualgit labelled for a repository under `under`."""
    prefix = str(under.resolve())
    query = {"filters": json.dumps({"label": ["dualgit.repo"]})}
    containers = [c for c in api.get("/containers/json", {"all": 1, **query})
                  if c["Labels"]["dualgit.repo"].startswith(prefix)]
    volumes = [v for v in api.get("/volumes", query).get("Volumes") or []
               if (v.get("Labels") or {}).get("dualgit.repo", "").startswith(prefix)]
    return containers, volumes


def remove_labelled(api: DockerAPI, under: Path) -> int:
    containers, volumes = labelled(api, under)
    for c in containers:
        api.request("DELETE", f"/containers/{c['Id']}", query={"force": 1, "v": 1}, ok=(204, 404))
    for v in labelled(api, under)[1]:
        api.request("DELETE", f"/volumes/{v['Name']}", ok=(204, 404))
    return len(containers) + len(volumes)


@pytest.fixture
def docker(engine: DockerAPI, tmp_path: Path) -> Iterator[DockerAPI]:
    """The engine, with everything this test's repositories own removed afterwards (and a proxy
    daemon that the test started, stopped)."""
    yield engine
    from dualgit.proxy import daemon

    daemon.stop()
    remove_labelled(engine, tmp_path)
    leaked = stop_proxies_of(tmp_path)
    if leaked:  # said here, where it happened: else it holds :3000 and the proxy tests after it fail
        pytest.fail(f"a proxy outlived the test (pid {', '.join(map(str, leaked))}; its pid file did not name it)")


def stop_proxies_of(base: Path) -> list[int]:
    """`dualgit proxy run` and `proxy supervise` processes whose HOME is under `base` (a test's),
    stopped; their pids."""
    def proxy(argv: list[bytes]) -> bool:
        commands = [argv[i:i + 2] for i in range(len(argv) - 1)]
        return ([b"proxy", b"run"] in commands or [b"proxy", b"supervise"] in commands) \
            and any(a == b"dualgit" or a.endswith(b"git-dual") for a in argv)

    return stop_processes_of(base, proxy)


def stop_processes_of(base: Path, wanted: Callable[[list[bytes]], bool]) -> list[int]:
    """Processes whose argv `wanted` picks and whose HOME is under `base`, sent SIGTERM; their pids."""
    stopped = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if not wanted(argv):
                continue
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            home = next((item[5:] for item in env if item.startswith(b"HOME=")), b"")
            if home.startswith(os.fsencode(base)):
                os.kill(int(pid), signal.SIGTERM)
                stopped.append(int(pid))
        except OSError:
            continue
    return stopped


@pytest.fixture
def registry(docker: DockerAPI, tmp_path: Path) -> Iterator[LocalRegistry]:
    """A registry on loopback with an image of its own to pull; the image goes afterwards, once this
    test's containers have gone."""
    served = LocalRegistry(docker, f"pull-{os.urandom(4).hex()}")
    yield served
    served.stop()
    remove_labelled(docker, tmp_path)
    served.remove_image(docker)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    if _engine_error():
        return
    base = tmp_path_factory.getbasetemp()
    containers, volumes = labelled(DockerAPI(), base)
    if containers or volumes:
        names = [c["Names"][0] for c in containers] + [v["Name"] for v in volumes]
        remove_labelled(DockerAPI(), base)
        pytest.fail(f"tests left labelled objects behind: {names}")


def add_worktree(repo: Path, folder: str, branch: str) -> Path:
    path = repo.parent / folder
    git("worktree", "add", "-q", "-b", branch, str(path), cwd=repo)
    return path.resolve()


def have_image(api: DockerAPI, image: str) -> bool:
    try:
        api.get(f"/images/{image}/json")
    except Exception:  # noqa: BLE001
        return False
    return True


def need_image(api: DockerAPI, image: str) -> None:
    if not have_image(api, image):
        message = f"image {image} is missing: run scripts/setup"
        pytest.fail(message) if IN_CI else pytest.skip(message)


def write_config(worktree: Path, text: str) -> None:
    (worktree / ".dual.toml").write_text(text)


# The browser tests' (test_browser, and test_remote's Vite on the remote engine)

VITE = "8.3.8"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def skip_or_fail(message: str) -> None:
    pytest.fail(message) if IN_CI else pytest.skip(message)


@pytest.fixture(scope="session")
def vite_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """node_modules with Vite, pinned, installed once by npm on the host (no registry: skipped off CI)."""
    if not shutil.which("npm"):
        skip_or_fail("npm is missing: the browser tests need it to install Vite")
    cache = Path(os.environ.get("DUALGIT_TEST_CACHE", Path.home() / ".cache" / "dualgit-tests")) / f"vite-{VITE}"
    if not (cache / "node_modules" / "vite" / "package.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "package.json").write_text(json.dumps({"name": "vite-cache", "private": True}))
        ran = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "-D", "-E", f"vite@{VITE}"], cwd=cache,
                             capture_output=True, text=True)
        if ran.returncode != 0:
            skip_or_fail(f"npm could not install vite@{VITE}: {ran.stderr.strip()[-300:]}")
    return cache / "node_modules"


@pytest.fixture
def browser() -> Iterator[object]:
    """Chromium, for one test: Playwright's sync API keeps an event loop running while it is open,
    which the asyncio tests after this one could not start theirs beside."""
    if not os.path.exists(CHROMIUM):
        skip_or_fail("Chromium is missing: run scripts/setup --tests (Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is missing: pip install -e '.[test]'")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


assert shutil.which("git"), "the tests drive real git"
