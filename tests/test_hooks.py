"""Hooks drive the lifecycle: real git, real hooks, the real engine."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import PORT, add_worktree, dual, git, write_config
from dualgit.config import TEMPLATE
from dualgit.engine.api import DockerAPI
from dualgit.githooks import install as githooks
from tests_support import LocalRegistry, wait_for


def containers_of(api: DockerAPI, repo: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    query = json.dumps({"label": [f"dualgit.repo={(repo / '.git').resolve()}"]})
    return {c["Labels"]["dualgit.worktree"]: c for c in api.get("/containers/json", {"all": 1, "filters": query})}


def installed(repo: Path) -> Path:
    result = dual("install", cwd=repo)
    assert result.returncode == 0, result.stderr
    return repo / ".git" / "hooks" / "post-checkout"


def test_install_is_idempotent_keeps_and_restores_a_foreign_hook(repo: Path, docker: DockerAPI) -> None:
    hook = repo / ".git" / "hooks" / "post-checkout"
    foreign = b"#!/bin/sh\necho foreign \"$@\" >> foreign.log\nexit 3\n"
    hook.write_bytes(foreign)
    hook.chmod(0o750)
    installed(repo)
    assert (repo / ".git" / "hooks" / "post-checkout.legacy").read_bytes() == foreign
    snapshot = {p.name: (p.read_bytes(), p.stat().st_mode) for p in hook.parent.iterdir()}
    second = dual("install", cwd=repo)
    assert second.returncode == 0 and "already installed" in second.stdout
    assert {p.name: (p.read_bytes(), p.stat().st_mode) for p in hook.parent.iterdir()} == snapshot
    assert git("config", "dual.enabled", cwd=repo).strip() == "true"

    # the foreign hook still runs, and its exit status is kept
    git("branch", "other", cwd=repo)
    switched = subprocess.run(["git", "checkout", "-q", "other"], cwd=repo, capture_output=True)
    assert switched.returncode == 1  # git reports any failing post-checkout as 1
    direct = subprocess.run([str(hook), "0" * 40, "1" * 40, "1"], cwd=repo, capture_output=True)
    assert direct.returncode == 3
    assert "foreign" in (repo / "foreign.log").read_text()

    assert dual("uninstall", cwd=repo).returncode == 0
    assert hook.read_bytes() == foreign and stat.S_IMODE(hook.stat().st_mode) == 0o750
    assert not (repo / ".git" / "hooks" / "post-checkout.legacy").exists()


def test_init_in_a_clone_keeps_the_committed_config_and_installs_the_hooks(repo: Path, tmp_path: Path) -> None:
    committed = (repo / ".dual.toml").read_bytes()
    clone = tmp_path / "clone"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    result = dual("init", cwd=clone)
    assert result.returncode == 0, result.stderr
    assert "kept .dual.toml" in result.stdout
    assert (clone / ".dual.toml").read_bytes() == committed
    assert (clone / ".git" / "hooks" / "post-checkout").exists()
    assert git("config", "dual.enabled", cwd=clone).strip() == "true"
    forced = dual("init", "--force", cwd=clone)
    assert forced.returncode == 0 and (clone / ".dual.toml").read_text() == TEMPLATE


def test_core_hooks_path_is_honoured(repo: Path) -> None:
    git("config", "core.hooksPath", ".husky", cwd=repo)
    (repo / ".husky").mkdir()
    installed(repo)
    assert githooks.is_ours(str(repo / ".husky" / "post-checkout"))
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()


def _recording_hook(repo: Path, tmp_path: Path) -> Path:
    """Install the real hook script with a stand-in interpreter that records each call."""
    log = tmp_path / "calls.log"
    recorder = tmp_path / "recorder"
    recorder.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    recorder.chmod(0o755)
    hook = installed(repo)
    hook.write_bytes(githooks.script("post-checkout", python=str(recorder)))
    return log


def test_hook_script_exits_before_python_for_file_checkouts_and_branch_switches(repo: Path, tmp_path: Path) -> None:
    log = _recording_hook(repo, tmp_path)
    (repo / "README").write_text("changed\n")
    git("checkout", "--", "README", cwd=repo)
    git("switch", "-q", "-c", "feat/a", cwd=repo)
    git("switch", "-q", "main", cwd=repo)
    assert not log.exists()
    git("worktree", "add", "-q", str(tmp_path / "wt"), "-b", "feat/b", cwd=repo)
    assert log.read_text().startswith("-P -m dualgit hook post-checkout 0000000")  # -P: never a planted dualgit
    assert log.read_text().rstrip().endswith(" 1")


def test_hook_script_respects_guard_and_switch_off(repo: Path, tmp_path: Path) -> None:
    log = _recording_hook(repo, tmp_path)
    git("config", "dual.enabled", "false", cwd=repo)
    git("worktree", "add", "-q", str(tmp_path / "off"), "-b", "off", cwd=repo)
    subprocess.run(["git", "worktree", "add", "-q", str(tmp_path / "guarded"), "-b", "guarded"],
                   cwd=repo, check=True, env={**os.environ, "DUALGIT_RUNNING": "1"})
    assert not log.exists()


def test_hook_script_fallbacks_and_bad_arguments(repo: Path, tmp_path: Path) -> None:
    hook = installed(repo)
    hook.write_bytes(githooks.script("post-checkout", python=str(tmp_path / "gone" / "python")))
    bare = {k: v for k, v in os.environ.items()}
    bare["PATH"] = "/usr/bin:/bin"
    result = subprocess.run(["git", "worktree", "add", "-q", str(tmp_path / "x"), "-b", "x"],
                            cwd=repo, capture_output=True, text=True, env=bare)
    assert result.returncode == 0 and (tmp_path / "x" / "README").exists()
    assert "dualgit: neither" in result.stderr and "git dual uninstall" in result.stderr
    wrong = subprocess.run([str(hook), "only-one"], cwd=repo, capture_output=True, text=True)
    assert wrong.returncode == 0
    assert wrong.stderr == "dualgit: post-checkout expects 3 arguments (old ref, new ref, flag), got 1; nothing done\n"


def test_worktree_add_creates_the_container_and_says_so(repo: Path, docker: DockerAPI) -> None:
    installed(repo)
    result = subprocess.run(["git", "worktree", "add", "../demo-x", "-b", "feat/x"], cwd=repo,
                            capture_output=True, text=True)
    assert result.returncode == 0
    line = [ln for ln in result.stderr.splitlines() if ln.startswith("dualgit:")]
    assert len(line) == 1 and line[0].startswith("dualgit: feat/x -> container dual-demo-demo-x-")
    assert ":3000 at http://127.0.0.1:" in line[0]
    tree = str((repo.parent / "demo-x").resolve())
    assert containers_of(docker, repo)[tree]["State"] == "running"


def test_shared_files_are_in_place_when_worktree_add_returns(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    """The hook copies them itself (the other steps stay in the background), and a folder on their
    way that is a link out of the worktree is not followed, on either side."""
    (repo / ".gitignore").write_text(".env.local\nconf/\n")
    (repo / ".env.local").write_text("TOKEN=abc\n")
    (repo / "conf").mkdir()
    (repo / "conf" / "app.key").write_text("key\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.key").write_text("not to be copied\n")
    (repo / "linked").symlink_to(outside)  # as a container in the main worktree could leave it
    write_config(repo, 'image = "busybox:latest"\nsetup = ["sleep 3"]\n[shared]\nfiles = [".env.local", "conf/*.key", '
                       '"linked/*.key"]\n')
    git("add", ".gitignore", ".dual.toml", cwd=repo)
    git("commit", "-q", "-m", "shared", cwd=repo)
    installed(repo)
    tree = repo.parent / "demo-shared"
    git("worktree", "add", "-q", "-b", "shared", str(tree), cwd=repo)
    # at once: no wait for the background setup, which is still on its `sleep 3`
    assert (tree / ".env.local").read_text() == "TOKEN=abc\n" and (tree / "conf" / "app.key").read_text() == "key\n"
    assert not (tree / "linked").exists() and not list(tree.glob("**/secret.key"))
    state = json.loads(dual("ls", "--json", cwd=tree).stdout)
    assert any(row["setup"] != "done" for row in state), state


def test_engine_down_warns_once_and_up_fixes_it(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    installed(repo)
    down = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    result = subprocess.run(["git", "worktree", "add", "-q", "../demo-y", "-b", "y"], cwd=repo,
                            capture_output=True, text=True, env=down)
    tree = repo.parent / "demo-y"
    assert result.returncode == 0 and (tree / "README").exists()
    assert [ln for ln in result.stderr.splitlines() if ln.strip()] == [
        f"dualgit: y: no container yet: cannot reach the Docker engine ({tmp_path}/no-engine.sock: "
        "No such file or directory) (once fixed, `git dual up` makes it)"
    ]
    assert dual("up", cwd=tree).returncode == 0
    assert containers_of(docker, repo)[str(tree.resolve())]["State"] == "running"

    write_config(repo, "strict = true\n")
    git("add", ".dual.toml", cwd=repo)
    git("commit", "-q", "-m", "strict", cwd=repo)
    strict = subprocess.run(["git", "worktree", "add", "-q", "../demo-z", "-b", "z"], cwd=repo,
                            capture_output=True, text=True, env=down)
    assert strict.returncode != 0 and (repo.parent / "demo-z" / "README").exists()


def test_removed_pruned_and_moved_worktrees_take_their_containers(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    trees = {name: add_worktree(repo, f"demo-{name}", name) for name in ("removed", "pruned", "moved", "locked", "kept")}
    for tree in trees.values():  # `up`, not the hook: the hook's background clean-up would race this test's steps
        assert dual("up", cwd=tree).returncode == 0
    assert set(containers_of(docker, repo)) == {str(t) for t in trees.values()}
    volume = docker.post("/volumes/create", {"Name": f"dualgit-test-{tmp_path.name}", "Labels": {
        "dualgit.repo": str((repo / ".git").resolve()), "dualgit.worktree": str(trees["removed"])}})["Name"]

    git("worktree", "remove", str(trees["removed"]), cwd=repo)
    subprocess.run(["rm", "-rf", str(trees["pruned"])], check=True)
    git("worktree", "prune", cwd=repo)
    moved_to = repo.parent / "demo-moved-here"
    git("worktree", "move", str(trees["moved"]), str(moved_to), cwd=repo)
    git("worktree", "lock", str(trees["locked"]), cwd=repo)
    subprocess.run(["rm", "-rf", str(trees["locked"])], check=True)  # as if its drive were unmounted
    git("worktree", "prune", cwd=repo)

    dry = dual("gc", "--dry-run", cwd=repo)
    assert dry.returncode == 0
    assert dry.stdout.count("would ") == 3 and "would recreate" in dry.stdout
    assert len(containers_of(docker, repo)) == 5

    assert dual("ls", cwd=repo).returncode == 0  # every command reconciles
    left = containers_of(docker, repo)
    assert set(left) == {str(trees["locked"]), str(trees["kept"]), str(moved_to.resolve())}
    assert left[str(moved_to.resolve())]["State"] == "running"
    assert not [v for v in docker.get("/volumes")["Volumes"] or [] if v["Name"] == volume]
    assert (dual("gc", cwd=repo).stdout.strip() == "nothing to do: every container has its worktree")


def test_rm_refuses_a_dirty_worktree_unless_forced(repo: Path, docker: DockerAPI) -> None:
    tree = add_worktree(repo, "demo-dirty", "dirty")
    assert dual("up", cwd=tree).returncode == 0
    (tree / "README").write_text("unsaved work\n")
    refused = dual("rm", "dirty", cwd=repo)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: dirty has changes git would lose: README\n"), refused.stderr
    assert "`git dual rm --force dirty` discards them" in refused.stderr
    assert (tree / "README").read_text() == "unsaved work\n"
    assert str(tree) in containers_of(docker, repo)
    forced = dual("rm", "--force", "dirty", cwd=repo)
    assert forced.returncode == 0, forced.stderr
    assert not tree.exists() and str(tree) not in containers_of(docker, repo)


def test_rm_of_several_removes_each_it_may_and_says_which_it_refused(repo: Path, docker: DockerAPI) -> None:
    clean, dirty = add_worktree(repo, "demo-clean", "clean"), add_worktree(repo, "demo-kept", "kept")
    for tree in (clean, dirty):
        assert dual("up", cwd=tree).returncode == 0
    (dirty / "notes.txt").write_text("unsaved work\n")
    result = dual("rm", "kept", "nope", "clean", cwd=repo)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and errors[0] == "error: kept has changes git would lose: notes.txt"
    assert errors[1] == "error: no worktree of demo at or on 'nope'"
    assert result.stdout.startswith(f"clean: removed {clean} and container ")
    assert not clean.exists() and (dirty / "notes.txt").read_text() == "unsaved work\n"
    assert list(containers_of(docker, repo)) == [str(dirty)]


def test_the_hook_leaves_a_pull_to_the_background_and_exec_waits_for_it(repo: Path, docker: DockerAPI,
                                                                        registry: LocalRegistry) -> None:
    """A pull can take minutes, and git waits for its hooks: `git worktree add` returns while the
    engine pulls (held half-way by the registry here), `ls` and `logs` say so, `exec` waits, and the
    container follows the image."""
    write_config(repo, f'image = "{registry.image}"\n')
    git("commit", "-qam", "an image to pull", cwd=repo)
    installed(repo)
    added = subprocess.run(["git", "worktree", "add", "-q", "../demo-pull", "-b", "pull"], cwd=repo,
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0
    assert added.stderr == (f"dualgit: pull: pulling {registry.image} in the background, then its container "
                            "(`git dual logs -f` follows it; `git dual exec` waits for it)\n")
    tree = (repo.parent / "demo-pull").resolve()
    row = json.loads(dual("ls", "--json", cwd=tree).stdout)[1]
    assert (row["state"], row["setup"], row["setup_step"]) == ("missing", "running", f"pull {registry.image}")
    pulling = f"dualgit: pulling {registry.image} (not on this machine) ...\n"
    assert wait_for(lambda: dual("logs", cwd=tree).stdout) == pulling
    said = repo.parent / "exec.err"
    with said.open("w") as err:
        waiting = subprocess.Popen(["git", "dual", "exec", "cat", "README"], cwd=tree, text=True,
                                   stdout=subprocess.PIPE, stderr=err)
    # not a terminal (an agent, a log): one line says why it waits
    line = f"dualgit: waiting for setup (pull {registry.image}); `git dual logs -f` follows it\n"
    wait_for(lambda: said.read_text() == line)
    assert str(tree) not in containers_of(docker, repo) and waiting.poll() is None  # the layer is held
    registry.release.set()
    out, _ = waiting.communicate(timeout=60)
    assert (waiting.returncode, out) == (0, "demo\n"), said.read_text()
    assert said.read_text() == line
    assert containers_of(docker, repo)[str(tree)]["State"] == "running"


def test_a_failed_background_pull_is_said_and_the_next_exec_tries_again(repo: Path, docker: DockerAPI,
                                                                     registry: LocalRegistry) -> None:
    registry.fail = True
    write_config(repo, f'image = "{registry.image}"\n')
    git("commit", "-qam", "an image to pull", cwd=repo)
    installed(repo)
    tree = add_worktree(repo, "demo-pull", "pull")
    row = wait_for(lambda: [r for r in json.loads(dual("ls", "--json", cwd=tree).stdout)[1:] if r["setup"] == "failed"])[0]
    assert (row["state"], row["setup_step"]) == ("missing", f"pull {registry.image}")
    assert dual("ls", cwd=tree).stdout.splitlines()[2].split()[1:4] == ["missing", "failed:", "pull"]
    logs = dual("logs", cwd=tree)
    assert logs.returncode == 1
    assert f"error: image {registry.image} is not on this machine and could not be pulled" in logs.stdout
    write_config(repo, f'image = "{registry.image}"\nstrict = true\n')  # strict: git waits for the pull, to fail
    git("commit", "-qam", "strict", cwd=repo)
    strict = subprocess.run(["git", "worktree", "add", "-q", "../demo-strict", "-b", "strict"], cwd=repo,
                            capture_output=True, text=True, timeout=60)
    assert strict.returncode != 0
    refused = f"dualgit: strict: no container yet: image {registry.image} is not on this machine and could not be pulled"
    assert refused in strict.stderr
    registry.fail = False
    registry.release.set()
    ran = dual("exec", "cat", "README", cwd=tree)
    assert (ran.returncode, ran.stdout) == (0, "demo\n"), ran.stderr
    assert f"dualgit: pulling {registry.image} (not on this machine) ...\n" in ran.stderr


def test_eight_concurrent_worktree_adds(repo: Path, docker: DockerAPI) -> None:
    installed(repo)
    procs = [subprocess.Popen(["git", "worktree", "add", "-q", f"../demo-c{i}", "-b", f"c{i}"], cwd=repo,
                              stderr=subprocess.PIPE, text=True) for i in range(8)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for i, (code, err) in enumerate(results):
        if code == 128 and re.search(r"fatal: failed to read \.git/worktrees/[^/]+/commondir", err):
            # git's own race between concurrent `worktree add`s: one reads another's commondir while
            # it is being written (seen here with plain git and a hook that only sleeps). That add
            # made nothing; made again alone, it must get its container like the rest.
            code, err = _add(repo, i)
        assert code == 0, err
        assert "no container yet" not in err
    found = containers_of(docker, repo)
    assert len(found) == 8
    assert all(c["State"] == "running" for c in found.values())
    # and they agree with what git dual ls says, one each
    rows = json.loads(dual("ls", "--json", cwd=repo).stdout)
    assert sorted(r["state"] for r in rows) == ["missing"] + ["running"] * 8


def _add(repo: Path, i: int) -> tuple[int, str]:
    subprocess.run(["git", "worktree", "prune"], cwd=repo, capture_output=True)
    subprocess.run(["git", "branch", "-D", f"c{i}"], cwd=repo, capture_output=True)
    shutil.rmtree(repo.parent / f"demo-c{i}", ignore_errors=True)
    done = subprocess.run(["git", "worktree", "add", "-q", f"../demo-c{i}", "-b", f"c{i}"], cwd=repo,
                          capture_output=True, text=True)
    return done.returncode, done.stderr


def test_pre_commit_framework(repo: Path, docker: DockerAPI, tmp_path: Path) -> None:
    source = Path(__file__).resolve().parent.parent
    hooks_repo = _snapshot(source, tmp_path / "dualgit-src")
    rev = git("rev-parse", "HEAD", cwd=hooks_repo).strip()
    (repo / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        f"- repo: {hooks_repo}\n"
        f"  rev: {rev}\n"
        "  hooks:\n"
        "  - id: dualgit-post-checkout\n"
        "  - id: dualgit-exec\n"
        "    name: check inside the container\n"
        "    args: [sh, -c, 'hostname; test -f ok || { echo \"inside: ok is missing\"; exit 1; }']\n"
    )
    git("add", ".pre-commit-config.yaml", cwd=repo)
    git("commit", "-q", "-m", "pre-commit", cwd=repo)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    subprocess.run(["pre-commit", "install", "--hook-type", "post-checkout", "--hook-type", "pre-commit"],
                   cwd=repo, check=True, env=env, capture_output=True)
    added = subprocess.run(["git", "worktree", "add", "../demo-pc", "-b", "pc"], cwd=repo,
                           capture_output=True, text=True, env=env, timeout=600)
    assert added.returncode == 0, added.stdout + added.stderr
    tree = (repo.parent / "demo-pc").resolve()
    assert containers_of(docker, repo)[str(tree)]["State"] == "running"

    (tree / "file").write_text("x\n")
    git("add", "file", cwd=tree)
    blocked = subprocess.run(["git", "commit", "-m", "blocked"], cwd=tree, capture_output=True, text=True, env=env)
    assert blocked.returncode != 0
    assert "inside: ok is missing" in blocked.stdout + blocked.stderr
    assert "dual-demo-demo-pc-" in blocked.stdout + blocked.stderr  # the container's hostname: it ran in there
    (tree / "ok").write_text("")
    git("add", "ok", cwd=tree)
    passed = subprocess.run(["git", "commit", "-q", "-m", "passes"], cwd=tree, capture_output=True, text=True, env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr


def _snapshot(source: Path, dest: Path) -> Path:
    """This checkout's files as they are now (committed or not), as a repository pre-commit can clone."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=source, check=True,
                           capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = source / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "snapshot", cwd=dest)
    return dest


def test_hook_adds_little_to_worktree_add(repo: Path, docker: DockerAPI) -> None:
    """Not a timing assertion (see benchmarks/): checks the hook returns once the container runs."""
    installed(repo)
    git("worktree", "add", "-q", "../demo-fast", "-b", "fast", cwd=repo)
    assert containers_of(docker, repo)[str((repo.parent / "demo-fast").resolve())]["State"] == "running"


def test_hook_line_gives_the_branch_url_and_starts_the_proxy(repo: Path, docker: DockerAPI,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUALGIT_PROXY")
    installed(repo)
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\n')
    git("commit", "-qam", "a free port", cwd=repo)
    result = subprocess.run(["git", "worktree", "add", "-q", "../demo-url", "-b", "feat/url"], cwd=repo,
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stderr.strip().endswith(f"; http://feat-url.demo.localhost:{PORT}/")
    wait_for(lambda: json.loads(dual("proxy", "status", "--json", cwd=repo).stdout)["running"])
    opened = dual("open", "feat/url", cwd=repo, env={"DISPLAY": "", "BROWSER": ""})
    assert opened.returncode == 0 and opened.stdout == f"http://feat-url.demo.localhost:{PORT}/\n"
    other = dual("open", "feat/url", "--port", "4000", cwd=repo)
    assert other.returncode == 1 and other.stderr.splitlines() == [
        "error: feat/url serves no port 4000",
        f"hint: it serves {PORT}: `git dual open --port {PORT}`; to add 4000: `git dual config add ports 4000`, "
        "then `git dual up`"]
    assert dual("proxy", "stop", cwd=repo).stdout == "proxy stopped\n"


def test_exec_and_urls_bring_back_the_proxy_that_a_reboot_left_stopped(repo: Path, docker: DockerAPI,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine restarts the containers after a reboot, but the proxy is a user process: the first
    `exec` (a dev server being started) or `urls` brings it back, listening for the running ports."""
    def listening() -> bool:
        status = json.loads(dual("proxy", "status", "--json", cwd=repo).stdout)
        return bool(status["running"]) and PORT in status.get("http_ports", [])

    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\n')
    assert dual("up", cwd=repo).returncode == 0
    assert dual("exec", "true", cwd=repo).returncode == 0  # DUALGIT_PROXY=0 (as in every test): none started
    assert not json.loads(dual("proxy", "status", "--json", cwd=repo).stdout)["running"]
    monkeypatch.delenv("DUALGIT_PROXY")
    try:
        for command in (["exec", "true"], ["urls"]):
            assert dual(*command, cwd=repo).returncode == 0
            wait_for(listening)
            assert dual("proxy", "stop", cwd=repo).stdout == "proxy stopped\n"
    finally:
        dual("proxy", "stop", cwd=repo)



def test_many_execs_at_once_start_one_proxy(repo: Path, docker: DockerAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents running a dozen commands at once after a reboot: one of them starts the proxy, and
    none of the others starts a second one that finds it running and logs an error."""
    write_config(repo, f'image = "busybox:latest"\nports = [{PORT}]\n')
    assert dual("up", cwd=repo).returncode == 0
    monkeypatch.delenv("DUALGIT_PROXY")
    try:
        execs = [subprocess.Popen(["git", "dual", "exec", "true"], cwd=repo) for _ in range(12)]
        assert [p.wait(timeout=120) for p in execs] == [0] * 12
        status = wait_for(lambda: (s := json.loads(dual("proxy", "status", "--json", cwd=repo).stdout))["running"] and s)
        log = Path(status["log"]).read_text()
        assert log.count("proxy ready") == 1 and "already runs" not in log, log
    finally:
        dual("proxy", "stop", cwd=repo)

def test_exec_reaps_a_removed_worktrees_container_too(repo: Path, docker: DockerAPI) -> None:
    gone = add_worktree(repo, "demo-gone", "gone")
    assert dual("up", cwd=gone).returncode == 0
    git("worktree", "remove", str(gone), cwd=repo)
    assert dual("exec", "true", cwd=repo).returncode == 0  # no other dualgit command runs
    wait_for(lambda: str(gone) not in containers_of(docker, repo))
