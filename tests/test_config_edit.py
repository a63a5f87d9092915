"""`git dual config` edits `.dual.toml` as `git config` edits git's files: comments, order and
formatting kept, byte for byte, and each value checked by the same reader, with its file:line:column
errors, before anything is written. No engine is asked."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import dual

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent.sock"}

COMMENTED = '''\
# The shop's branches.
image = "busybox:latest"   # tiny

# HTTP ports
ports = [3000]

# The dev server.
# serve = "npm run dev"

# Folders kept per branch.
cache_dirs = [
    "node_modules",  # npm's
]

[env]
# NODE_ENV = "development"
LEVEL = "debug"

# Files git ignores, copied from the main worktree.
[shared]
files = []
'''


def config(repo: Path, *args: str) -> tuple[int, str, str]:
    ran = dual("config", *args, cwd=repo, env=NO_ENGINE)
    return ran.returncode, ran.stdout, ran.stderr


def test_edits_keep_every_other_byte(repo: Path) -> None:
    toml = repo / ".dual.toml"
    toml.write_text(COMMENTED)
    assert config(repo, "set", "serve", "npm run dev")[0] == 0  # where the file has it as a comment
    assert config(repo, "add", "ports", "5173")[0] == 0
    assert config(repo, "set", "env.NODE_ENV", "production")[0] == 0
    assert config(repo, "add", "cache_dirs", ".venv")[0] == 0
    assert config(repo, "set", "memory", "2g")[0] == 0  # not in the file at all: after the last top-level key
    assert toml.read_text() == COMMENTED.replace(
        '# serve = "npm run dev"', 'serve = "npm run dev"').replace(
        "ports = [3000]", "ports = [3000, 5173]").replace(
        '# NODE_ENV = "development"', 'NODE_ENV = "production"').replace(
        '    "node_modules",  # npm\'s\n]', '    "node_modules",  # npm\'s\n    ".venv",\n]').replace(
        '    ".venv",\n]\n', '    ".venv",\n]\nmemory = "2g"\n')
    for args in (("unset", "memory"), ("remove", "cache_dirs", ".venv"), ("remove", "ports", "5173"),
                 ("unset", "env.NODE_ENV"), ("unset", "serve")):
        assert config(repo, *args)[0] == 0, args
    back = toml.read_text()
    assert back == COMMENTED.replace('# serve = "npm run dev"\n', "").replace('# NODE_ENV = "development"\n', ""), back


def test_get_and_json(repo: Path) -> None:
    (repo / ".dual.toml").write_text(COMMENTED)
    assert config(repo, "get", "image")[1] == "busybox:latest\n"
    assert config(repo, "get", "cache_dirs")[1] == '["node_modules"]\n'
    got = json.loads(config(repo, "get", "env", "--json")[1])
    assert got == {"file": str(repo / ".dual.toml"), "key": "env", "value": {"LEVEL": "debug"}}
    said = json.loads(config(repo, "set", "ports", "[3000, 8080]", "--json")[1])
    assert said == {"file": str(repo / ".dual.toml"), "key": "ports", "value": [3000, 8080], "changed": True}
    assert json.loads(config(repo, "add", "ports", "8080", "--json")[1])["changed"] is False  # there already
    code, _, err = config(repo, "get", "strict")
    assert code == 1 and err.startswith("error: strict is not set in ") and "`git dual config set strict" in err


def test_a_wrong_value_is_refused_before_the_file_is_written(repo: Path) -> None:
    toml = repo / ".dual.toml"
    toml.write_text(COMMENTED)
    cases = {("set", "ports", "3000"): ".dual.toml:5:9: `ports` must be a list of port numbers",
             ("add", "ports", "70000"): ".dual.toml:5:9: `ports` must be a list of port numbers from 1 to 65535",
             ("set", "memory", "lots"): ".dual.toml:14:10: `memory` must be a size as Docker writes it",
             ("set", "max_running", "3"): "`max_running` is user-wide, not a branch's",
             ("add", "image", "x"): "`image` is not a list",
             ("set", "serve.4000", "x"): "`serve.4000` must be a declared port"}
    for args, said in cases.items():
        code, _, err = config(repo, *args)
        assert code == 1 and said in err.splitlines()[0], (args, err)
        assert len(err.splitlines()) == 2 and err.splitlines()[1].startswith("hint: "), err
        assert toml.read_text() == COMMENTED, args


def test_global_edits_the_users_own_file(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out, _ = config(repo, "--global", "set", "max_running", "8")
    assert code == 0
    user = home / ".config" / "dualgit" / "config.toml"
    assert user.read_text() == "max_running = 8\n"
    assert config(repo, "--global", "set", "idle_after", "forever")[0] == 1
    assert config(repo, "--global", "get", "max_running")[1] == "8\n"
    assert not (repo / ".dual.toml").read_text().count("max_running")


def test_a_file_that_is_not_there_is_made(repo: Path) -> None:
    (repo / ".dual.toml").unlink()
    assert config(repo, "set", "serve", "npm run dev")[0] == 0
    assert (repo / ".dual.toml").read_text() == 'serve = "npm run dev"\n'
