"""Setup steps as plugins: the built-ins and a third party's, against real git and the real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import add_worktree, dual, git, write_config
from dualgit.engine.api import DockerAPI
from tests_support import wait_for


def setup_of(cwd: Path, worktree: Path) -> tuple[str, str | None]:
    rows = json.loads(dual("ls", "--json", cwd=cwd).stdout)
    row = next(r for r in rows if r["worktree"] == str(worktree))
    return row["setup"], row["setup_step"]


def commit_config(repo: Path, text: str) -> None:
    write_config(repo, text)
    git("add", ".dual.toml", cwd=repo)
    git("commit", "-q", "-m", "config", cwd=repo)


def test_slow_setup_runs_in_the_background_and_exec_waits(repo: Path, docker: DockerAPI) -> None:
    commit_config(repo, 'image = "busybox:latest"\nsetup = ["sleep 3", "echo ready > ready.txt"]\n')
    assert dual("install", cwd=repo).returncode == 0
    git("worktree", "add", "-q", "../demo-slow", "-b", "slow", cwd=repo)
    tree = (repo.parent / "demo-slow").resolve()
    state, step = setup_of(repo, tree)
    assert state == "running"  # git worktree add came back before setup was done
    assert step in ("starting", "setup 1: sleep 3")
    waited = dual("exec", "cat", "ready.txt", cwd=tree)
    assert waited.returncode == 0 and waited.stdout == "ready\n"
    assert setup_of(repo, tree) == ("done", None)
    assert "==> [2/2] setup 2: echo ready > ready.txt" in dual("logs", cwd=tree).stdout


def test_exec_that_makes_the_container_waits_for_the_setup_it_began(repo: Path, docker: DockerAPI) -> None:
    """No hook made this worktree's container: the first exec makes it, and waits for its setup too."""
    commit_config(repo, 'image = "busybox:latest"\nsetup = ["sleep 1", "echo ready > ready.txt"]\n')
    tree = (repo.parent / "demo-nohook").resolve()
    git("worktree", "add", "-q", str(tree), "-b", "nohook", cwd=repo)
    assert setup_of(repo, tree) == ("none", None)
    first = dual("exec", "cat", "ready.txt", cwd=tree)
    assert (first.returncode, first.stdout) == (0, "ready\n"), first.stderr
    assert setup_of(repo, tree) == ("done", None)


def test_a_failing_step_is_reported_by_ls_logs_and_exec(repo: Path, docker: DockerAPI) -> None:
    commit_config(repo, 'image = "busybox:latest"\nsetup = ["echo fine", "echo broken-thing >&2; exit 3", "echo never"]\n')
    tree = add_worktree(repo, "demo-fail", "fail")
    assert dual("up", cwd=tree).returncode == 0
    state = wait_for(lambda: (s := setup_of(repo, tree))[0] != "running" and s)
    assert state == ("failed", "setup 2: echo broken-thing >&2; exit 3")
    logs = dual("logs", cwd=tree)
    assert logs.returncode == 1 and "broken-thing" in logs.stdout and "never" not in logs.stdout
    ran = dual("exec", "true", cwd=tree)
    assert ran.returncode == 1
    assert "setup failed at step `setup 2: echo broken-thing >&2; exit 3`" in ran.stderr and "broken-thing" in ran.stderr
    assert dual("exec", "--no-wait", "true", cwd=tree).returncode == 0
    # fixed, and run again
    write_config(tree, 'image = "busybox:latest"\nsetup = ["echo fixed"]\n')
    assert dual("up", "--setup", cwd=tree).returncode == 0
    assert dual("exec", "true", cwd=tree).returncode == 0
    assert setup_of(repo, tree) == ("done", None)


def test_shared_files_and_cache_volumes(repo: Path, docker: DockerAPI) -> None:
    (repo / ".gitignore").write_text(".env.local\nnode_modules/\n")
    (repo / ".env.local").write_text("TOKEN=abc\n")
    commit_config(repo, 'image = "busybox:latest"\ncache_dirs = ["node_modules"]\n'
                        'setup = ["mkdir -p node_modules && echo kept > node_modules/marker"]\n'
                        '[shared]\nfiles = [".env.local"]\n')
    git("add", ".gitignore", cwd=repo)
    git("commit", "-q", "-m", "ignore", cwd=repo)
    tree = add_worktree(repo, "demo-cache", "cache")
    assert dual("up", cwd=tree).returncode == 0
    assert dual("exec", "cat", ".env.local", cwd=tree).stdout == "TOKEN=abc\n"
    assert (tree / ".env.local").read_text() == "TOKEN=abc\n"
    assert dual("exec", "cat", "node_modules/marker", cwd=tree).stdout == "kept\n"
    assert not (tree / "node_modules" / "marker").exists()  # it lives in the volume, not the worktree
    query = {"filters": json.dumps({"label": [f"dualgit.worktree={tree}"]})}
    volumes = [v["Name"] for v in docker.get("/volumes", query)["Volumes"] or []]
    assert len(volumes) == 1
    first = json.loads(dual("ls", "--json", cwd=tree).stdout)[1]["container"]
    first_id = docker.get(f"/containers/{first}/json")["Id"]
    write_config(tree, 'image = "busybox:latest"\ncache_dirs = ["node_modules"]\nports = [3000, 4000]\n')
    assert dual("up", cwd=tree).returncode == 0  # recreated: ports changed
    assert docker.get(f"/containers/{first}/json")["Id"] != first_id
    assert dual("exec", "cat", "node_modules/marker", cwd=tree).stdout == "kept\n"
    assert dual("rm", "--force", "cache", cwd=repo).returncode == 0
    assert not docker.get("/volumes", query)["Volumes"]


def test_devcontainer_json_with_comments_and_trailing_commas(repo: Path, docker: DockerAPI) -> None:
    (repo / ".dual.toml").unlink()
    (repo / ".devcontainer").mkdir()
    (repo / ".devcontainer" / "devcontainer.json").write_text("""{
  // the image, with a comment
  "image": "busybox:latest", /* and another */
  "containerEnv": {"FROM_DEVCONTAINER": "yes", "URL": "http://x//y",},
  "remoteEnv": {"REMOTE": "1"},
  "forwardPorts": [5000,],
  "postCreateCommand": {"one": "echo created > one.txt", "two": ["sh", "-c", "echo two > two.txt"]},
  "postStartCommand": "echo started >> started.txt",
}
""")
    assert dual("up", cwd=repo).returncode == 0
    assert dual("exec", "cat", "one.txt", "two.txt", cwd=repo).stdout == "created\ntwo\n"
    wait_for(lambda: (repo / "started.txt").exists())  # the agent runs it once setup is done
    env = dual("exec", "sh", "-c", 'echo "$FROM_DEVCONTAINER $URL $REMOTE"', cwd=repo).stdout
    assert env == "yes http://x//y 1\n"
    row = json.loads(dual("ls", "--json", cwd=repo).stdout)[0]
    assert sorted(row["ports"]) == ["3000", "5000"]
    write_config(repo, 'image = "busybox:latest"\n[env]\nFROM_DEVCONTAINER = "dual.toml wins"\n')
    assert dual("up", cwd=repo).returncode == 0
    assert dual("exec", "sh", "-c", 'echo "$FROM_DEVCONTAINER"', cwd=repo).stdout == "dual.toml wins\n"

    (repo / ".devcontainer" / "devcontainer.json").write_text('{\n  "image": "busybox:latest"\n  "oops": 1\n}\n')
    (repo / ".dual.toml").unlink()
    bad = dual("up", "--recreate", cwd=repo)
    assert bad.returncode == 1
    assert f"{repo.resolve()}/.devcontainer/devcontainer.json:3:3: Expecting ',' delimiter" in bad.stderr


def test_image_detection_table(tmp_path: Path) -> None:
    from dualgit_plugins.image_detect import detect

    assert detect(str(tmp_path)) == "debian:bookworm-slim"
    (tmp_path / "pyproject.toml").write_text("")
    assert detect(str(tmp_path)) == "python:3-bookworm"
    (tmp_path / "package.json").write_text("{}")
    assert detect(str(tmp_path)) == "node:lts-bookworm"
    (tmp_path / ".nvmrc").write_text("v20.11.1\n")
    assert detect(str(tmp_path)) == "node:20-bookworm"


def test_no_image_anywhere_falls_back_to_debian(repo: Path, docker: DockerAPI) -> None:
    (repo / ".dual.toml").unlink()
    assert dual("up", cwd=repo).returncode == 0
    row = json.loads(dual("ls", "--json", cwd=repo).stdout)[0]
    assert docker.get(f"/containers/{row['container']}/json")["Config"]["Image"] == "debian:bookworm-slim"


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny distribution with a `dualgit` entry point, installed with pip into a folder of its own."""
    src = tmp_path_factory.mktemp("dualgit-hello-src")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "dualgit-hello"\nversion = "1.2.3"\n'
        '[project.entry-points.dualgit]\nhello = "dualgit_hello"\n')
    (src / "dualgit_hello.py").write_text(
        "import os, time\n"
        "from dualgit.hookspecs import Step, ContainerSettings, hookimpl\n\n"
        "@hookimpl\n"
        "def dualgit_config_keys():\n    return ['hello']\n\n"
        "@hookimpl\n"
        "def dualgit_setup_steps(ctx):\n"
        "    steps = [Step(name='hello', order=50, command='echo \"hello from a plugin\" > hello.txt')]\n"
        "    gate = os.environ.get('HELLO_GATE')  # a step on this machine, that waits for a file\n"
        "    if gate:\n"
        "        steps.append(Step(name='gate', order=10, run=lambda ctx: wait_for(gate)))\n"
        "    return steps\n\n"
        "def wait_for(path):\n"
        "    while not os.path.exists(path):\n        time.sleep(0.05)\n\n"
        "@hookimpl\n"
        "def dualgit_container_settings(ctx):\n"
        "    if os.environ.get('HELLO_BREAK'):\n        raise RuntimeError('hello is broken')\n"
        "    return ContainerSettings(env={'HELLO': str(ctx.config.get('hello', 'world'))})\n\n"
        "@hookimpl(wrapper=True)\n"
        "def dualgit_setup(ctx):\n"
        "    print('hello wrapper: before', flush=True)\n"
        "    result = yield\n"
        "    print('hello wrapper: after', flush=True)\n"
        "    return result\n")
    target = tmp_path_factory.mktemp("dualgit-hello-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(src)],
                   check=True, capture_output=True)
    return target


def test_a_third_party_plugin_adds_a_step(repo: Path, docker: DockerAPI, third_party: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(third_party))
    listing = dual("plugins", cwd=repo).stdout
    assert "hello          dualgit-hello 1.2.3  [config_keys, container_settings, setup, setup_steps]" in listing
    assert "devcontainer" in listing
    write_config(repo, 'image = "busybox:latest"\nhello = "there"\n')
    up = dual("up", cwd=repo)
    assert up.returncode == 0 and "unknown key" not in up.stderr
    assert dual("exec", "cat", "hello.txt", cwd=repo).stdout == "hello from a plugin\n"
    assert dual("exec", "sh", "-c", "echo $HELLO", cwd=repo).stdout == "there\n"
    logs = dual("logs", cwd=repo).stdout
    assert logs.index("hello wrapper: before") < logs.index("==> [1/1] hello") < logs.index("hello wrapper: after")

    only = dual("plugins", cwd=repo, env={"DUALGIT_PLUGINS": "no:hello"}).stdout  # the built-ins always load
    assert [line.split()[0] for line in only.splitlines()] == BUILTINS
    assert [line.split()[0] for line in dual("plugins", cwd=repo).stdout.splitlines()] == sorted([*BUILTINS, "hello"])
    broken = dual("up", "--recreate", cwd=repo, env={"HELLO_BREAK": "1"})
    assert broken.returncode == 1
    assert broken.stderr.startswith("error: plugin hello failed in dualgit_container_settings: RuntimeError: hello is broken")


def test_a_container_removed_while_setup_runs_is_not_brought_back_by_its_setup(
        repo: Path, docker: DockerAPI, third_party: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`git dual down --rm` between two steps: the next step, run in that container, fails; it used to
    make the container again (and so did a test's clean-up, racing a runner)."""
    monkeypatch.setenv("PYTHONPATH", str(third_party))
    monkeypatch.setenv("HELLO_GATE", str(tmp_path / "gate"))
    write_config(repo, 'image = "busybox:latest"\n')
    assert dual("up", cwd=repo).returncode == 0
    wait_for(lambda: setup_of(repo, repo) == ("running", "gate"))
    name = json.loads(dual("ls", "--json", cwd=repo).stdout)[0]["container"]
    assert dual("down", "--rm", cwd=repo).returncode == 0
    (tmp_path / "gate").touch()
    log = Path(os.environ["HOME"]) / ".local" / "state" / "dualgit" / "setup" / f"{name}.log"
    wait_for(lambda: "==> setup failed at: hello" in log.read_text())
    assert f"error: cannot run in container {name}: " not in log.read_text()  # by its id, not its name
    assert "cannot run in container" in log.read_text() and not (repo / "hello.txt").exists()
    assert json.loads(dual("ls", "--json", cwd=repo).stdout)[0]["state"] == "missing"


BUILTINS = ["cache-dirs", "devcontainer", "image-detect", "setup", "shared-files"]


def test_builtins_always_load_and_one_turns_off_by_name(repo: Path, docker: DockerAPI) -> None:
    """DUALGIT_PLUGINS filters third-party plugins; a built-in goes only when named with no:."""
    (repo / ".env.local").write_text("x\n")
    write_config(repo, 'image = "busybox:latest"\ncache_dirs = ["node_modules"]\n[shared]\nfiles = [".env.local"]\n')
    for setting in ("", "setup"):  # naming a built-in is no filter: it loads anyway
        listed = dual("plugins", cwd=repo, env={"DUALGIT_PLUGINS": setting}).stdout
        assert [line.split()[0] for line in listed.splitlines()] == BUILTINS
    off = dual("plugins", cwd=repo, env={"DUALGIT_PLUGINS": "no:shared-files"}).stdout
    assert [line.split()[0] for line in off.splitlines()] == [b for b in BUILTINS if b != "shared-files"]
    up = dual("up", cwd=repo, env={"DUALGIT_PLUGINS": "no:devcontainer"})
    assert up.returncode == 0 and "unknown key" not in up.stderr, up.stderr  # shared and cache_dirs are known


def test_a_wrong_value_in_a_plugins_key_is_the_users_mistake_said_at_once(repo: Path, docker: DockerAPI) -> None:
    write_config(repo, 'image = "busybox:latest"\n\n[shared]\nfiles = ".env.local"\n')
    up = dual("up", cwd=repo)
    assert up.returncode == 1
    assert up.stderr.startswith(f"error: {repo}/.dual.toml:4:9: `shared.files` must be a list of strings, not '.env.local'")
    assert "failed in" not in up.stderr and json.loads(dual("ls", "--json", cwd=repo).stdout)[0]["state"] == "missing"
    write_config(repo, 'image = "busybox:latest"\nsetup = [1]\n')
    assert f"{repo}/.dual.toml:2:9: `setup` must be" in dual("up", cwd=repo).stderr


def test_hookimpl_comes_from_dualgit_without_pluggy_for_exec() -> None:
    code = ("import sys, dualgit; assert 'pluggy' not in sys.modules; from dualgit import hookimpl; "
            "from dualgit.hookspecs import hookimpl as spec; assert hookimpl is spec; print('ok')")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "ok\n"


def test_plugin_bad_input(repo: Path, docker: DockerAPI) -> None:
    missing = dual("plugins", cwd=repo, env={"DUALGIT_PLUGINS": "setup,nope"})
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: DUALGIT_PLUGINS names nope, which is not installed")
    write_config(repo, 'image = "busybox:latest"\ncache_dir = ["x"]\n')
    warned = dual("up", cwd=repo)
    assert warned.returncode == 0
    assert "unknown key `cache_dir` (did you mean `cache_dirs`?)" in warned.stderr


def test_a_step_never_runs_twice_at_once(repo: Path, docker: DockerAPI) -> None:
    write_config(repo, 'image = "busybox:latest"\nsetup = ["echo start >> runs.log; sleep 1; echo end >> runs.log"]\n')
    assert dual("up", cwd=repo).returncode == 0
    racers = [subprocess.Popen(["git", "dual", "up", "--setup"], cwd=repo, stdout=subprocess.DEVNULL) for _ in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in racers)
    assert dual("exec", "true", cwd=repo).returncode == 0
    # every run has ended: the first (the container's) and the three forced ones, one after another
    # (a `done` seen between two runs is not the end: the next one may be about to start)
    wait_for(lambda: dual("logs", cwd=repo).stdout.count("==> setup done") == 4, timeout=60)
    assert setup_of(repo, repo.resolve())[0] == "done"
    runs = (repo / "runs.log").read_text().split()
    assert runs and len(runs) % 2 == 0 and runs == ["start", "end"] * (len(runs) // 2)
    assert os.path.exists(repo / "runs.log")
