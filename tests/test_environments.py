"""What a repository's devcontainer.json makes of its container, as `git dual inspect` reads it (no
engine), and on a real engine: where the file is found, the lifecycle's order, the variables, and
every key that is not honoured said in one line, never a guessed image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import dual, free_port, git, remove_labelled
from dualgit.engine.api import DockerAPI
from tests_support import DistributionRegistry, wait_for


def devcontainer(repo: Path, data: dict[str, Any] | str, where: str = ".devcontainer/devcontainer.json") -> None:
    path = repo / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def inspect(repo: Path) -> dict[str, Any]:
    done = dual("inspect", "--json", cwd=repo, env={"DOCKER_HOST": "unix:///nonexistent/engine.sock"})  # no engine
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def plain(repo: Path) -> Path:
    (repo / ".dual.toml").unlink()
    return repo


KEYS = {"worktree", "sources", "image", "build", "features", "compose", "env", "mounts", "ports", "services", "user",
        "workspace_folder", "steps", "not_honoured", "needs_consent"}

# (devcontainer.json, what inspect must say: a key and its value, or a not-honoured key)
CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"image": "busybox:latest"}, {"image": "busybox:latest", "build": None, "compose": None}),
    ({"build": {"dockerfile": "Dockerfile", "context": "..", "args": {"A": "1"}, "target": "dev"}},
     {"image": None, "build": {"dockerfile": ".devcontainer/Dockerfile", "context": ".", "args": {"A": "1"},
                               "target": "dev"}, "not_honoured": "image"}),
    ({"dockerFile": "Dockerfile"}, {"image": None, "not_honoured": "image"}),
    ({"dockerComposeFile": ["../compose.yaml", "compose.dev.yaml"], "service": "app", "runServices": ["db"]},
     {"image": None, "compose": {"files": ["compose.yaml", ".devcontainer/compose.dev.yaml"], "service": "app",
                                 "run_services": ["db"]}, "not_honoured": "image"}),
    ({"image": "busybox:latest", "features": {"ghcr.io/devcontainers/features/go:1": {"version": "1.22"},
                                              "./local": True}},
     {"features": [{"id": "ghcr.io/devcontainers/features/go:1", "options": {"version": "1.22"}},
                   {"id": "./local", "options": {}}], "not_honoured": "image"}),  # ./local: no such folder
    ({"image": "busybox:latest", "containerEnv": {"A": "${containerWorkspaceFolderBasename}", "B": "plain"},
      "remoteEnv": {"C": "${localWorkspaceFolder}/x"}},
     {"env": {"A": "demo", "B": "plain", "C": "{worktree}/x"}}),
    ({"image": "busybox:latest", "containerEnv": {"T": "${localEnv:HOME}", "U": "${localEnv:NOT_SET_HERE:fallback}"}},
     {"env": {}, "needs_consent": [{"key": "host variable HOME (as T)", "source": ".devcontainer/devcontainer.json"},
                                   {"key": "host variable NOT_SET_HERE (as U)",
                                    "source": ".devcontainer/devcontainer.json"}]}),
    ({"image": "busybox:latest", "containerEnv": {"ID": "${devcontainerId}", "P": "${containerEnv:PATH}:/x"},
      "postCreateCommand": "echo ${containerEnv:HOME:/root} ${HOME}", "onCreateCommand": ["echo", "${localEnv:HOME}"]},
     {"not_honoured": ["onCreateCommand"]}),
    ({"image": "busybox:latest", "forwardPorts": [8000, "db:5432"]},
     {"ports": {"http": [3000, 8000], "tcp": []}, "not_honoured": "forwardPorts"}),
    ({"image": "busybox:latest", "remoteUser": "vscode"}, {"user": "vscode"}),
    ({"image": "busybox:latest", "capAdd": ["SYS_PTRACE"], "privileged": True},
     {"needs_consent": [{"key": "capAdd SYS_PTRACE", "source": ".devcontainer/devcontainer.json"},
                        {"key": "privileged", "source": ".devcontainer/devcontainer.json"}]}),
    ({"image": "busybox:latest", "workspaceFolder": "/work",
      "workspaceMount": "source=${localWorkspaceFolder},target=/srv/app,type=bind,consistency=cached"},
     {"workspace_folder": "/srv/app", "not_honoured": []}),
    ({"image": "busybox:latest", "workspaceMount": "source=elsewhere,target=/srv/app,type=volume"},
     {"workspace_folder": "{worktree}", "not_honoured": ["workspaceMount"]}),
    ({"image": "busybox:latest", "workspaceFolder": "relative"},
     {"workspace_folder": "{worktree}", "not_honoured": ["workspaceFolder"]}),
    ({"image": "busybox:latest", "overrideCommand": False, "appPort": 8080, "init": False,
      "shutdownAction": "none", "initializeCommand": "touch /tmp/x"},
     {"not_honoured": ["shutdownAction", "initializeCommand"], "ports": {"http": [3000, 8080], "tcp": []}}),
    ({"image": "busybox:latest", "init": True, "overrideCommand": True, "updateRemoteUserUID": True,
      "customizations": {"vscode": {}}, "hostRequirements": {"cpus": 2}, "waitFor": "onCreateCommand", "name": "x"},
     {"not_honoured": []}),
]


@pytest.mark.parametrize("config, said", CASES, ids=[",".join(sorted(c)) for c, _ in CASES])
def test_what_inspect_says(plain: Path, config: dict[str, Any], said: dict[str, Any]) -> None:
    devcontainer(plain, config)
    found = inspect(plain)
    assert set(found) == KEYS
    assert found["sources"] == [".devcontainer/devcontainer.json"]
    worktree = str(plain.resolve())
    for key, value in said.items():
        if key == "not_honoured":
            named = [item["key"] for item in found["not_honoured"]]
            assert all(item["source"] == ".devcontainer/devcontainer.json" and item["why"] for item in found["not_honoured"])
            assert sorted(named) == sorted(value) if isinstance(value, list) else value in named
        else:
            expected = json.loads(json.dumps(value).replace("{worktree}", worktree))
            assert found[key] == expected, key


def test_variables_as_the_spec_expands_them(plain: Path, docker: DockerAPI) -> None:
    devcontainer(plain, {"image": "busybox:latest",
                         "containerEnv": {"ID": "${devcontainerId}", "P": "${containerEnv:PATH}:/x", "H": "${localEnv:HOME}"},
                         "postCreateCommand": "echo ${containerEnv:P} ${containerEnv:NOPE:dflt} > vars.txt"})
    found = inspect(plain)
    assert len(found["env"]["ID"]) == 52 and found["env"]["P"] == "${containerEnv:PATH}:/x"  # the image's: at up
    assert found["steps"][0]["command"] == "echo ${P} ${NOPE:-dflt} > vars.txt"
    assert dual("install", cwd=plain).returncode == 0
    assert dual("up", cwd=plain).returncode == 0
    env = dual("exec", "sh", "-c", 'echo "$ID $P $H"; cat vars.txt', cwd=plain)
    image_env = docker.request("GET", "/images/busybox:latest/json").json()["Config"]["Env"]
    image_path = next(e[5:] for e in image_env if e.startswith("PATH="))
    assert env.stdout == f"{found['env']['ID']} {image_path}:/x \n{image_path}:/x dflt\n", env.stderr  # H: held back
    assert dual("allow", cwd=plain).returncode == 0
    assert dual("up", cwd=plain).returncode == 0
    home = dual("exec", "sh", "-c", 'echo "$H"', cwd=plain).stdout
    assert home == f"{os.environ['HOME']}\n"


def test_the_lifecycle_in_the_spec_order_with_variables(plain: Path) -> None:
    devcontainer(plain, """{
      // JSON with comments, as the format allows
      "image": "busybox:latest",
      "postStartCommand": "echo start",
      "postCreateCommand": ["sh", "-c", "echo post ${containerWorkspaceFolderBasename}"],
      "updateContentCommand": {"one": "echo update", "two": "echo update two"},
      "onCreateCommand": "echo create in ${containerWorkspaceFolder}",
    }""")
    steps = inspect(plain)["steps"]
    assert [(s["source"], s["when"]) for s in steps] == [
        ("onCreateCommand", "create"), ("updateContentCommand", "create"), ("postCreateCommand", "create"),
        ("postStartCommand", "start")]
    assert steps[0]["command"] == f"echo create in {plain.resolve()}"
    assert "sh -c 'echo update' & p0=$!" in steps[1]["command"]  # an object's entries: in parallel
    assert steps[2]["command"] == ["sh", "-c", "echo post demo"]


def test_found_where_the_spec_puts_it(plain: Path) -> None:
    devcontainer(plain, {"image": "busybox:latest"}, ".devcontainer.json")
    assert inspect(plain)["sources"] == [".devcontainer.json"]
    (plain / ".devcontainer.json").unlink()
    devcontainer(plain, {"image": "busybox:latest"}, ".devcontainer/python/devcontainer.json")
    assert inspect(plain)["sources"] == [".devcontainer/python/devcontainer.json"]
    devcontainer(plain, {"image": "debian:bookworm-slim"}, ".devcontainer/node/devcontainer.json")
    several = dual("inspect", cwd=plain)
    assert several.returncode == 1
    assert several.stderr.splitlines()[0] == ("error: 2 devcontainer.json files here: .devcontainer/node/devcontainer.json, "
                                              ".devcontainer/python/devcontainer.json")
    assert "git dual config set devcontainer" in several.stderr
    assert dual("config", "set", "devcontainer", "node", cwd=plain).returncode == 0
    found = inspect(plain)
    assert found["image"] == "debian:bookworm-slim" and found["sources"] == [".dual.toml",
                                                                              ".devcontainer/node/devcontainer.json"]
    assert dual("config", "set", "devcontainer", "ruby", cwd=plain).returncode == 0
    wrong = dual("inspect", cwd=plain)
    assert wrong.returncode == 1 and "names no devcontainer.json here" in wrong.stderr


def test_a_missing_compose_file_or_dockerfile_is_refused_never_guessed(plain: Path, docker: DockerAPI) -> None:
    (plain / ".nvmrc").write_text("20\n")  # the image guess this used to take
    devcontainer(plain, {"build": {"dockerfile": "Dockerfile"}})
    assert dual("install", cwd=plain).returncode == 0
    up = dual("up", cwd=plain)
    assert up.returncode == 1
    assert up.stderr.splitlines()[0] == ("error: .devcontainer/devcontainer.json: cannot read the Dockerfile "
                                         ".devcontainer/Dockerfile (No such file or directory)")
    devcontainer(plain, {"dockerComposeFile": "compose.yaml", "service": "app"})  # a file that is not there
    up = dual("up", cwd=plain)
    assert up.returncode == 1
    assert up.stderr.splitlines()[0] == ("error: .devcontainer/devcontainer.json: cannot read compose file "
                                         ".devcontainer/compose.yaml (No such file or directory)")
    doctor = json.loads(dual("doctor", "--json", cwd=plain).stdout)
    assert [i["key"] for i in doctor["not_honoured"]] == ["image"]
    assert "note not honoured: image (.devcontainer/devcontainer.json): .devcontainer/devcontainer.json: cannot read " \
        "compose file" in dual("doctor", cwd=plain).stdout
    assert not docker.containers({"label": [f"dualgit.worktree={plain.resolve()}"]})


def test_the_lifecycle_at_its_times_on_a_real_engine(plain: Path, docker: DockerAPI) -> None:
    """Create steps in order once; postStartCommand on every start (made, up after down, a stop and
    an exec, an engine restart); postAttachCommand before `git dual shell`'s shell; an object's
    entries in parallel (each waits for the other's file: run one after the other, they would fail)."""
    devcontainer(plain, {
        "image": "busybox:latest",
        "postCreateCommand": "echo post-create >> order",
        "onCreateCommand": "echo create-${containerWorkspaceFolderBasename} >> order",
        "updateContentCommand": {
            "a": "touch .a; i=0; until [ -e .b ]; do sleep 0.1; i=$((i+1)); [ $i -gt 600 ] && exit 9; done; true",
            "b": ["sh", "-c", "touch .b; i=0; until [ -e .a ]; do sleep 0.1; i=$((i+1)); [ $i -gt 600 ] && exit 9; done; true"],
        },
        "postStartCommand": "echo start >> order",
        "postAttachCommand": "echo attach >> order",
        "containerEnv": {"WHERE": "${containerWorkspaceFolder}"},
    })
    git("add", "-A", cwd=plain)
    git("commit", "-qm", "devcontainer", cwd=plain)
    assert dual("install", cwd=plain).returncode == 0
    tree = plain.parent / "feat"
    git("worktree", "add", "-q", "-b", "feat", str(tree), cwd=plain)
    order = tree / "order"

    def starts(count: int) -> None:
        wait_for(lambda: order.exists() and order.read_text().count("start\n") == count, timeout=120)

    done = dual("exec", "sh", "-c", 'echo "$WHERE"', cwd=tree)
    assert done.returncode == 0 and done.stdout == f"{tree.resolve()}\n", done.stderr
    starts(1)
    assert order.read_text() == "create-feat\npost-create\nstart\n"
    assert dual("down", cwd=tree).returncode == 0
    assert dual("up", cwd=tree).returncode == 0
    starts(2)
    container = docker.containers({"label": [f"dualgit.worktree={tree.resolve()}"]})[0]["Id"]
    docker.request("POST", f"/containers/{container}/stop", query={"t": 1}, ok=(204, 304))
    assert dual("exec", "true", cwd=tree).returncode == 0
    starts(3)
    docker.request("POST", f"/containers/{container}/restart", query={"t": 1}, ok=(204,))
    starts(4)
    shell = dual("shell", cwd=tree, input="cat order\n")
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.endswith("start\nattach\n")
    assert "==> devcontainer postStartCommand" in dual("logs", cwd=tree).stdout
    assert [s["when"] for s in inspect(tree)["steps"]] == ["create", "create", "create", "start", "attach"]


def _remove_built(api: DockerAPI, under: Path) -> None:
    """The images the test built, once its containers have gone."""
    remove_labelled(api, under)
    for image in api.request("GET", "/images/json", query={"filters": json.dumps({"label": ["dualgit.build"]})}).json():
        if any(t.startswith("dualgit-build/demo:") for t in image.get("RepoTags") or []):
            api.request("DELETE", f"/images/{image['Id']}", query={"force": 1}, ok=(200, 404, 409))


def test_a_build_in_the_background_shared_and_outdated(repo: Path, docker: DockerAPI) -> None:
    (repo / ".dual.toml").write_text('build = { dockerfile = "Dockerfile", args = { GREETING = "hi" } }\n')
    fresh = os.urandom(4).hex()  # BuildKit's cache outlives the images: a step of this run's own
    (repo / "Dockerfile").write_text(f"FROM busybox:latest\nARG GREETING\nRUN sleep 5; echo {fresh}; echo \"$GREETING\" > "
                                     "/greeting\nCOPY data.txt /data.txt\n")
    (repo / "data.txt").write_text("one\n")
    (repo / ".dockerignore").write_text("ignored.txt\n")
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "build", cwd=repo)
    assert dual("install", cwd=repo).returncode == 0
    try:
        feat = repo.parent / "feat"
        added = subprocess.run(["git", "worktree", "add", "-q", "-b", "feat", str(feat)], cwd=repo, capture_output=True,
                               text=True)
        assert "building from Dockerfile in the background" in added.stderr, added.stderr
        row = json.loads(dual("ls", "--json", cwd=feat).stdout)
        assert [(r["setup"], r["setup_step"]) for r in row if r["branch"] == "feat"] == [("running", "build Dockerfile")]
        done = dual("exec", "cat", "/greeting", "/data.txt", cwd=feat)  # waits for the build
        assert (done.returncode, done.stdout) == (0, "hi\none\n"), done.stderr
        log = dual("logs", cwd=feat).stdout
        assert f"RUN sleep 5; echo {fresh}" in log and f" {fresh}\n" in log or f"\n{fresh}\n" in log, log
        assert "#1 [internal] load remote build context" in log  # BuildKit, which this engine has
        tag = inspect(feat)["image"]
        assert tag.startswith("dualgit-build/demo:") and inspect(feat)["build"]["args"] == {"GREETING": "hi"}

        (feat / "ignored.txt").write_text("not in the context\n")
        assert inspect(feat)["image"] == tag  # .dockerignore honoured: no new inputs
        other = repo.parent / "other"
        again = subprocess.run(["git", "worktree", "add", "-q", "-b", "other", str(other)], cwd=repo,
                               capture_output=True, text=True)
        assert "running" in again.stderr and "building" not in again.stderr  # the same inputs: no build
        before = docker.containers({"label": [f"dualgit.worktree={feat.resolve()}"]})[0]["Id"]
        (feat / "data.txt").write_text("two\n")
        up = dual("up", cwd=feat)
        assert up.returncode == 0 and "its image is outdated" in up.stderr and "--recreate" in up.stderr
        assert docker.containers({"label": [f"dualgit.worktree={feat.resolve()}"]})[0]["Id"] == before
        assert dual("exec", "cat", "/data.txt", cwd=feat).stdout == "one\n"
        assert dual("up", "--recreate", cwd=feat).returncode == 0
        assert dual("exec", "cat", "/data.txt", cwd=feat).stdout == "two\n"

        (feat / "Dockerfile").write_text("FROM busybox:latest\n# a comment\nRUN true \\\n  && false\nRUN true\n")
        failed = dual("up", "--recreate", cwd=feat)
        assert failed.returncode == 1
        assert failed.stderr.splitlines()[-2].startswith("error: Dockerfile:3: the build failed: ")
    finally:
        _remove_built(docker, repo.parent)


def test_a_build_stays_inside_the_worktree(plain: Path) -> None:
    (plain / ".dual.toml").write_text('build = { dockerfile = "Dockerfile", context = ".." }\n')
    (plain / "Dockerfile").write_text("FROM busybox:latest\n")
    found = inspect(plain)
    assert found["image"] is None
    assert "the build's context .. is outside the worktree" in found["not_honoured"][0]["why"]
    bad = dual("config", "set", "build", "[1]", cwd=plain)
    assert bad.returncode == 1 and "a Dockerfile's path" in bad.stderr


def test_the_workspace_folder_where_the_project_expects_it(plain: Path, docker: DockerAPI) -> None:
    devcontainer(plain, {"image": "dualgit/debian:bookworm", "workspaceFolder": "/workspaces/${localWorkspaceFolderBasename}",
                         "postCreateCommand": "pwd > where.txt"})
    need = subprocess.run(["docker", "image", "inspect", "dualgit/debian:bookworm"], capture_output=True)
    if need.returncode != 0:
        pytest.skip("dualgit/debian:bookworm is missing: run scripts/setup")
    git("add", "-A", cwd=plain)
    git("commit", "-qm", "devcontainer", cwd=plain)
    assert dual("install", cwd=plain).returncode == 0
    tree = plain.parent / "feat"
    git("worktree", "add", "-q", "-b", "feat", str(tree), cwd=plain)
    (tree / "sub").mkdir()
    assert dual("exec", "pwd", cwd=tree / "sub").stdout == "/workspaces/feat/sub\n"
    assert (tree / "where.txt").read_text() == "/workspaces/feat\n"
    assert inspect(tree)["workspace_folder"] == "/workspaces/feat"
    status = dual("exec", "git", "status", "--short", "--branch", cwd=tree)
    assert status.returncode == 0 and status.stdout.startswith("## feat"), status.stderr
    # the main worktree's git dir is guarded at the workspace folder too (issue 27's protections)
    assert dual("up", cwd=plain).returncode == 0
    wrote = dual("exec", "sh", "-c", "echo x >> /workspaces/demo/.git/config", cwd=plain)
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr


@pytest.fixture
def feature_registry(tmp_path: Path) -> Any:
    if not shutil.which("docker-registry") and not os.path.exists("/usr/bin/docker-registry"):
        message = "docker-registry (Debian's) is missing: run scripts/setup --tests"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    (tmp_path / "registry").mkdir()
    served = DistributionRegistry(tmp_path / "registry", free_port())
    yield served
    served.stop()


def test_features_local_and_from_a_registry(plain: Path, docker: DockerAPI, feature_registry: Any) -> None:
    """A local feature with options (and one it installsAfter), and an OCI feature pushed to a real
    registry on loopback, installed into an image built on busybox, in order, with their env."""
    feature_registry.push_feature("devcontainers/features/tool", "1", {
        "devcontainer-feature.json": json.dumps({"id": "tool", "version": "1.0.0",
                                                 "options": {"level": {"type": "string", "default": "low"}},
                                                 "containerEnv": {"TOOL_HOME": "/opt/tool"}}),
        "install.sh": "#!/bin/sh\nset -e\nmkdir -p /opt/tool\necho \"tool $LEVEL for $_REMOTE_USER\" >> /opt/order\n",
    })
    folder = plain / ".devcontainer" / "features"
    for name, meta, script in (
        ("hello", {"id": "hello", "version": "1.0.0", "installsAfter": ["./features/base"],
                   "options": {"greeting": {"type": "string", "default": "hi"}, "punct-mark": {"type": "string",
                                                                                              "default": "!"}},
                   "containerEnv": {"HELLO": "${PATH}-x"}},  # Docker's ENV expands it, as for the CLI
         '#!/bin/sh\nset -e\necho "hello $GREETING$PUNCT_MARK home $_REMOTE_USER_HOME" >> /opt/order\n'),
        ("base", {"id": "base", "version": "1.0.0"}, "#!/bin/sh\nmkdir -p /opt\necho base >> /opt/order\n"),
    ):
        (folder / name).mkdir(parents=True)
        (folder / name / "devcontainer-feature.json").write_text(json.dumps(meta))
        (folder / name / "install.sh").write_text(script)
    devcontainer(plain, {"image": "busybox:latest", "features": {
        "./features/hello": {"greeting": "hey"},
        "./features/base": {},
        f"{feature_registry.address}/devcontainers/features/tool:1": {"level": "high"},
    }, "overrideFeatureInstallOrder": [f"{feature_registry.address}/devcontainers/features/tool"]})
    found = inspect(plain)
    assert found["image"].startswith("dualgit-build/demo:f") and [f["id"] for f in found["features"]] == [
        "./features/hello", "./features/base", f"{feature_registry.address}/devcontainers/features/tool:1"]
    assert dual("install", cwd=plain).returncode == 0
    try:
        up = dual("up", cwd=plain)
        assert up.returncode == 0, up.stderr
        done = dual("exec", "sh", "-c", "cat /opt/order; echo $TOOL_HOME; echo $HELLO", cwd=plain)
        image_env = docker.request("GET", "/images/busybox:latest/json").json()["Config"]["Env"]
        path = next(e[5:] for e in image_env if e.startswith("PATH="))
        assert done.stdout == f"tool high for root\nbase\nhello hey! home /root\n/opt/tool\n{path}-x\n", done.stderr
        missing = dict(found)
        devcontainer(plain, {"image": "busybox:latest", "features": {
            f"{feature_registry.address}/devcontainers/features/nothing-here:1": {}}})
        failed = dual("up", "--recreate", cwd=plain)
        assert failed.returncode == 1 and missing
        assert f"feature {feature_registry.address}/devcontainers/features/nothing-here:1 could not be fetched" in failed.stderr
    finally:
        _remove_built(docker, plain.parent)


def test_the_rest_of_what_changes_the_container(plain: Path, docker: DockerAPI) -> None:
    """appPort and forwardPorts become URLs with portsAttributes' labels; init, updateRemoteUserUID
    and overrideCommand: false, as the engine's inspect shows them."""
    (plain / "Dockerfile").write_text('FROM busybox:latest\nCMD ["sh", "-c", "echo own > /tmp/own; sleep 3600"]\n')
    devcontainer(plain, {"build": {"dockerfile": "../Dockerfile", "context": ".."}, "appPort": 8080,
                         "forwardPorts": [5000], "portsAttributes": {"5000": {"label": "API"}}, "init": False,
                         "overrideCommand": False, "updateRemoteUserUID": False})
    assert dual("install", cwd=plain).returncode == 0
    try:
        assert dual("up", cwd=plain).returncode == 0
        made = docker.containers({"label": [f"dualgit.worktree={plain.resolve()}"]})[0]
        details = docker.request("GET", f"/containers/{made['Id']}/json").json()
        assert details["HostConfig"]["Init"] is False
        wait_for(lambda: dual("exec", "cat", "/tmp/own", cwd=plain).stdout == "own\n", timeout=60)
        urls = json.loads(dual("urls", "--json", cwd=plain).stdout)
        assert {(u["port"], u["label"]) for u in urls} == {(3000, None), (5000, "API"), (8080, None)}
        assert "(API)" in dual("urls", cwd=plain).stdout
    finally:
        _remove_built(docker, plain.parent)


# Every key of the spec's devcontainer.json reference, each with a value, and what dualgit makes of
# it: "used" (checked by the tests above), "named" (a not_honoured line says why), or "quiet"
# (editor-only, or compose's, refused as a whole).
SPEC_KEYS: dict[str, tuple[Any, str]] = {
    "name": ("x", "quiet"), "image": ("busybox:latest", "used"), "forwardPorts": ([5000], "used"),
    "portsAttributes": ({"5000": {"label": "API"}}, "used"), "otherPortsAttributes": ({"onAutoForward": "silent"}, "named"),
    "containerEnv": ({"A": "1"}, "used"), "remoteEnv": ({"B": "2"}, "used"), "remoteUser": ("root", "used"),
    "containerUser": ("root", "used"), "updateRemoteUserUID": (False, "used"), "userEnvProbe": ("loginShell", "named"),
    "overrideCommand": (False, "used"), "shutdownAction": ("none", "named"), "init": (False, "used"),
    "privileged": (True, "used"), "capAdd": (["SYS_PTRACE"], "used"), "securityOpt": (["seccomp=unconfined"], "used"),
    "mounts": (["source=/tmp,target=/host-tmp,type=bind"], "used"), "features": ({}, "used"),
    "overrideFeatureInstallOrder": ([], "used"), "customizations": ({"vscode": {}}, "quiet"),
    "appPort": (8080, "used"), "workspaceMount": ("source=${localWorkspaceFolder},target=/w,type=bind", "used"),
    "workspaceFolder": ("/w", "used"), "runArgs": (["--cap-add=SYS_ADMIN", "--label=x"], "named"),
    "initializeCommand": ("touch x", "named"), "onCreateCommand": ("true", "used"),
    "updateContentCommand": ("true", "used"), "postCreateCommand": ("true", "used"),
    "postStartCommand": ("true", "used"), "postAttachCommand": ("true", "used"), "waitFor": ("postCreateCommand", "quiet"),
    "hostRequirements": ({"cpus": 2, "memory": "4gb", "storage": "32gb", "gpu": False}, "quiet"),
    "secrets": ({"TOKEN": {"description": "x"}}, "quiet"),
}
BUILD_KEYS = {"dockerfile": "used", "context": "used", "args": "used", "target": "used", "options": "named",
              "cacheFrom": "named"}


@pytest.mark.parametrize("key", sorted(SPEC_KEYS))
def test_every_key_of_the_spec_is_used_or_named(plain: Path, key: str) -> None:
    value, fate = SPEC_KEYS[key]
    config = {"image": "busybox:latest", key: value}
    devcontainer(plain, config)
    found = inspect(plain)
    named = {item["key"] for item in found["not_honoured"]}
    assert (fate == "named") == any(n == key or n.startswith((key + ".", key + " ")) for n in named), found["not_honoured"]


def test_every_build_key_is_used_or_named(plain: Path) -> None:
    (plain / ".devcontainer").mkdir()
    (plain / ".devcontainer" / "Dockerfile").write_text("FROM busybox:latest\n")
    devcontainer(plain, {"build": {"dockerfile": "Dockerfile", "context": ".", "args": {"A": "1"}, "target": "t",
                                   "options": ["--pull"], "cacheFrom": "x"}})
    found = inspect(plain)
    named = {item["key"] for item in found["not_honoured"]}
    assert named == {f"build.{k}" for k, fate in BUILD_KEYS.items() if fate == "named"}
    assert found["build"] == {"dockerfile": ".devcontainer/Dockerfile", "context": ".devcontainer", "args": {"A": "1"},
                              "target": "t"}
    devcontainer(plain, {"dockerFile": "Dockerfile", "context": ".."})  # the legacy spelling
    assert inspect(plain)["build"]["context"] == "."


def test_a_failed_step_is_found_in_the_dockerfile(tmp_path: Path) -> None:
    from dualgit.worktrees.images import _failed_line

    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM busybox AS base\n# note\nRUN a \\\n  && b\n\nFROM base AS app\nARG X\nRUN c\nRUN d\n")
    assert _failed_line(str(dockerfile), "Step 2/6 : RUN a   && b\n") == ":3"
    assert _failed_line(str(dockerfile), "Step 5/6 : RUN c\n") == ":8"
    assert _failed_line(str(dockerfile), "#9 [app 2/3] RUN c\n") == ":8"  # ARG: no step of BuildKit's
    assert _failed_line(str(dockerfile), "#9 [stage-1 3/3] RUN d\n") == ":9"
    assert _failed_line(str(dockerfile), "#5 [2/2] RUN a   && b\n") == ":3"
    assert _failed_line(str(dockerfile), "#9 [internal] load metadata\n") == ""


@pytest.mark.parametrize("patterns", [[], ["node_modules"], ["**/*.py"], ["*.md", "!README.md"], ["docs", "!docs/keep.md"],
                                      ["a/**", "!a/b/d.py"], ["src/*/t.py"], ["a/b/[cd].*"], ["./docs/../a"], ["*", "!src"],
                                      ["**/test", "Dockerfile"]])
def test_dockerignore_as_docker_py_reads_it(tmp_path: Path, patterns: list[str]) -> None:
    """dualgit's own reading of .dockerignore (no docker-py import in the hook) against docker-py's."""
    from docker.utils.build import exclude_paths

    from dualgit.worktrees.dockerignore import files

    for name in ("a/b/c.txt", "a/b/d.py", "a/x.py", "node_modules/m/i.js", "src/app.py", "src/test/t.py", "Dockerfile",
                 "README.md", "docs/x.md", "docs/keep.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / ".dockerignore").write_text("\n".join(["# a comment", *patterns]) + "\n")
    assert set(files(str(tmp_path), "Dockerfile")) == set(exclude_paths(str(tmp_path), list(patterns), "Dockerfile"))
