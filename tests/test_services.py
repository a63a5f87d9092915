"""Each branch its own Postgres and Redis, in its own namespace, seeded from main's data: on a real
engine with images built from Debian's packages (scripts/setup), and compose files read as compose
reads them."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from conftest import add_worktree, dual, git, labelled, need_image
from dualgit.config import parse
from dualgit.config.compose import interpolate
from dualgit.config.compose import load as load_compose
from dualgit.engine.api import DockerAPI
from dualgit.errors import DualgitError
from tests_support import wait_for

PG = "dualgit/postgres:15"
REDIS = "dualgit/redis:7"
CONFIG = f'''image = "{PG}"
[services.db]
image = "{PG}"
env = {{ POSTGRES_PASSWORD = "dev" }}
ports = [5432]
volumes = {{ data = "/var/lib/postgresql/data" }}
seed = "main"

[services.cache]
image = "{REDIS}"
ports = [6379]
'''


def sql(worktree: Path, query: str, where: str = "localhost") -> str:
    done = dual("exec", "-e", "PGPASSWORD=dev", "--", "psql", "-h", where, "-U", "postgres", "-Atc", query, cwd=worktree)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def row(worktree: Path) -> dict[str, Any]:
    done = dual("ls", "--json", cwd=worktree)
    assert done.returncode == 0, done.stderr
    return next(r for r in json.loads(done.stdout) if r["worktree"] == str(worktree.resolve()))


def settled(worktree: Path) -> dict[str, Any]:
    """The worktree's `ls` row once its setup (services first) is over."""
    return wait_for(lambda: (lambda r: r if r["setup"] in ("done", "failed") else None)(row(worktree)), 120)


@pytest.fixture
def with_db(repo: Path, docker: DockerAPI) -> Path:
    need_image(docker, PG)
    need_image(docker, REDIS)
    (repo / ".dual.toml").write_text(CONFIG)
    git("commit", "-qam", "services", cwd=repo)
    assert dual("install", cwd=repo).returncode == 0
    up = dual("up", cwd=repo)
    assert up.returncode == 0, up.stderr
    assert settled(repo)["setup"] == "done"
    return repo


# pure: where a bad service is written

@pytest.mark.parametrize(("text", "where", "words"), [
    ('[services.db]\nports = [5432]\n', ".dual.toml:1:1", "no `image` or `build`"),
    ('ports = [5432]\n[services.db]\nimage = "x"\nports = [5432]\n', ".dual.toml:4:9", "declared twice"),
    ('[services.db]\nimage = "x"\nports = [1]\n[services.b]\nimage = "y"\nports = [1]\n', ".dual.toml:6:9",
     "declared twice"),
    ('[services.db]\nimage = "x"\nvolumes = { data = "../etc" }\n', ".dual.toml:3:11", "below the container's root"),
    ('[services.db]\nimage = "x"\nvolumes = { data = "/" }\n', ".dual.toml:3:11", "below the container's root"),
    ('[services.a]\nimage = "x"\ndepends_on = ["b"]\n[services.b]\nimage = "x"\ndepends_on = ["a"]\n',
     ".dual.toml:", "circle"),
])
def test_a_bad_service_is_named_where_it_is_written(text: str, where: str, words: str) -> None:
    with pytest.raises(DualgitError) as caught:
        parse(text)
    assert caught.value.message.startswith(where) and words in caught.value.message


def test_compose_variables_follow_the_spec() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${SET:+alt} $$x $SET", env, "f") == "v d  d alt $x v"
    with pytest.raises(DualgitError, match=r"f: \$\{UNSET\} is required: give it"):
        interpolate("${UNSET:?give it}", env, "f")


def test_compose_files_merge_extend_and_keep_profiles_off(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TAG=15\nCOMPOSE_PROFILES=tools\n")
    (tmp_path / "base.yaml").write_text("services:\n  common:\n    image: busybox:latest\n    environment: [A=1]\n")
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  db:\n    image: pg:${TAG}\n    ports: ['5432:5432']\n    environment: {X: '1'}\n    x-dualgit: {seed: main}\n"
        "  app:\n    extends: {file: base.yaml, service: common}\n    environment: {B: '2'}\n"
        "  tool:\n    image: busybox:latest\n    profiles: [tools]\n"
        "  mail:\n    image: busybox:latest\n    profiles: [mail]\n")
    (tmp_path / "compose.override.yaml").write_text(
        "services:\n  db:\n    environment: {Y: '2'}\n    volumes: [data:/var/lib/pg]\n    networks: [x]\n")
    found, notes, _ = load_compose(str(tmp_path), ["compose.yaml", "compose.override.yaml"])
    by = {s.name: s for s in found}
    assert set(by) == {"db", "app", "tool"}  # mail's profile is off
    assert by["db"].image == "pg:15" and by["db"].ports == (5432,) and by["db"].env == {"X": "1", "Y": "2"}
    assert by["db"].volumes == {"data": "/var/lib/pg"} and by["db"].seed == "main"
    assert by["app"].image == "busybox:latest" and by["app"].env == {"A": "1", "B": "2"}
    assert any("`networks` is not honoured" in n and n.startswith("compose.yaml:2:3") for n in notes), notes


# on a real engine

def test_each_branch_has_its_own_database_seeded_from_mains(with_db: Path, docker: DockerAPI) -> None:
    repo = with_db
    sql(repo, "create table t(x int); insert into t values (42)")
    assert sql(repo, "select x from t", where="db") == "42"  # at its name too
    feature = add_worktree(repo, "feature", "feature")  # the hook: git does not wait for the seed
    seen = settled(feature)
    assert seen["setup"] == "done", seen
    assert {s["name"]: s["state"] for s in seen["services"]} == {"db": "running", "cache": "running"}
    assert sql(feature, "select x from t") == "42"  # main's rows
    sql(feature, "insert into t values (7); create table only_here(y int)")
    assert sql(repo, "select count(*) from t") == "1"  # a write on the branch does not reach main
    assert sql(repo, "select count(*) from pg_tables where tablename = 'only_here'") == "0"
    done = dual("exec", "--", "redis-cli", "-h", "cache", "ping", cwd=feature)
    assert done.stdout.strip() == "PONG", done.stderr
    # no host port is taken: 5432 is each branch's own, published on loopback at an ephemeral port
    host = seen["ports"]["5432"]
    assert host.startswith("127.0.0.1:") and host != "127.0.0.1:5432"
    with socket.create_connection(("127.0.0.1", int(host.split(":")[1])), 5) as sock:
        sock.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest: Postgres answers N or S
        assert sock.recv(1) in (b"N", b"S")
    urls = json.loads(dual("urls", "--json", cwd=feature).stdout)
    assert any("db" in json.dumps(u) and "tcp://127.0.0.1:" in json.dumps(u) for u in urls), urls

    # sleep and wake keep the data
    assert dual("down", cwd=feature).returncode == 0
    assert {s["state"] for s in row(feature)["services"]} == {"exited"}
    assert sql(feature, "select count(*) from t") == "2"

    # exec and logs in a service
    done = dual("exec", "--service", "db", "--", "sh", "-c", "exit 42", cwd=feature)
    assert done.returncode == 42
    assert "ready to accept connections" in dual("logs", "--service", "db", cwd=feature).stdout

    # re-seeding says what it replaces, and replaces it only with --force
    done = dual("seed", cwd=feature)
    assert done.returncode == 1 and "would replace service db's data" in done.stderr
    assert sql(feature, "select count(*) from t") == "2"
    done = dual("seed", "--force", "--json", cwd=feature)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["from"] == "main"
    assert sql(feature, "select count(*) from t") == "1"
    assert dual("seed", "db", "--from", "feature", "--force", cwd=feature).returncode == 1  # itself

    # removing the worktree takes its services and their volumes, and only theirs
    git("worktree", "remove", "--force", str(feature), cwd=repo)
    assert dual("gc", cwd=repo).returncode == 0
    containers, volumes = labelled(docker, repo.parent)
    assert not [c for c in containers if str(feature) in json.dumps(c.get("Labels"))]
    assert not [v for v in volumes if str(feature) in json.dumps(v.get("Labels"))]
    assert sql(repo, "select count(*) from t") == "1"  # main's data is untouched
    assert len([v for v in volumes if (v.get("Labels") or {}).get("dualgit.service") == "db"]) == 1


def test_a_compose_file_with_a_healthcheck_depends_on_env_and_profiles(repo: Path, docker: DockerAPI) -> None:
    need_image(docker, PG)
    need_image(docker, REDIS)
    (repo / "compose.yaml").write_text(
        "services:\n"
        "  db:\n    image: ${DB_IMAGE:-postgres:16}\n    environment: {POSTGRES_PASSWORD: '${PASSWORD}'}\n"
        "    ports: ['5432:5432']\n    volumes: [pgdata:/var/lib/postgresql/data]\n"
        "    healthcheck: {test: ['CMD-SHELL', 'pg_isready -h 127.0.0.1 -U postgres'], interval: 1s, retries: 60}\n"
        "  migrate:\n    image: busybox:latest\n    command: sh -c 'echo migrated'\n"
        "    depends_on: {db: {condition: service_healthy}}\n"
        "  cache:\n    image: " + REDIS + "\n    ports: ['6379']\n"
        "    depends_on: {db: {condition: service_healthy}, migrate: {condition: service_completed_successfully}}\n"
        "  mail:\n    image: busybox:latest\n    command: sleep 1000\n    profiles: [mail]\n"
        "volumes:\n  pgdata:\n")
    (repo / ".env").write_text(f"DB_IMAGE={PG}\nPASSWORD=dev\n")
    (repo / ".dual.toml").write_text(f'image = "{PG}"\ncompose = ["compose.yaml"]\n')
    assert dual("up", cwd=repo).returncode == 0
    seen = settled(repo)
    assert seen["setup"] == "done", dual("logs", cwd=repo).stdout
    assert {s["name"]: s["health"] or s["state"] for s in seen["services"]} == {
        "db": "healthy", "migrate": "exited", "cache": "running"}  # a one-shot: done, and not restarted
    assert sql(repo, "select 1", where="db") == "1"
    log = dual("logs", cwd=repo).stdout
    assert log.index("service db") < log.index("service migrate") < log.index("service cache")  # each waited
    assert "migrated" in dual("logs", "--service", "migrate", cwd=repo).stdout
    image = docker.get(f"/containers/{seen['services'][0]['container']}/json")["Config"]["Image"]
    assert image == PG  # from .env


def test_devcontainer_compose_service_is_the_branch_and_the_rest_its_services(repo: Path, docker: DockerAPI) -> None:
    need_image(docker, PG)
    (repo / ".dual.toml").unlink()
    folder = repo / ".devcontainer"
    folder.mkdir()
    (folder / "compose.yaml").write_text(
        f"services:\n  app:\n    image: {PG}\n    command: sleep infinity\n    environment: [DATABASE_URL=postgres://db/app]\n"
        f"  db:\n    image: {PG}\n    environment: {{POSTGRES_PASSWORD: dev}}\n    ports: ['5432']\n"
        "  unused:\n    image: busybox:latest\n")
    (folder / "devcontainer.json").write_text(json.dumps(
        {"dockerComposeFile": "compose.yaml", "service": "app", "runServices": ["app", "db"]}))
    assert dual("up", cwd=repo).returncode == 0
    seen = settled(repo)
    assert [s["name"] for s in seen["services"]] == ["db"]
    assert sql(repo, "select 3", where="db") == "3"
    branch = docker.get(f"/containers/{seen['container']}/json")
    assert branch["Config"]["Image"] == PG
    assert "DATABASE_URL=postgres://db/app" in branch["Config"]["Env"]  # the dev container service's environment


def test_a_built_service_with_caps_and_a_seed_branch_that_is_not_there(repo: Path, docker: DockerAPI) -> None:
    (repo / "web.Dockerfile").write_text('FROM busybox:latest\nRUN mkdir /www && echo hi > /www/index.html\n'
                                         'CMD ["httpd", "-f", "-p", "7000", "-h", "/www"]\n')
    (repo / ".dual.toml").write_text('image = "busybox:latest"\n[services.web]\nbuild = "web.Dockerfile"\n'
                                     'ports = [7000]\nhttp = [7000]\nmemory = "64m"\ncpus = 0.5\n'
                                     'volumes = { data = "/data" }\nseed = "nope"\n')
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "web", cwd=repo)
    assert dual("up", cwd=repo).returncode == 0
    seen = settled(repo)
    assert seen["setup"] == "done", dual("logs", cwd=repo).stdout
    assert "the seed branch nope has no worktree here; it starts empty" in dual("logs", cwd=repo).stdout
    done = dual("exec", "--", "wget", "-qO-", "http://web:7000/", cwd=repo)
    assert done.stdout == "hi\n", done.stderr
    assert "http://main.demo.localhost:7000/" in dual("urls", cwd=repo).stdout  # an HTTP service's URL
    host = docker.get(f"/containers/{seen['services'][0]['container']}/json")["HostConfig"]
    assert (host["Memory"], host["NanoCpus"]) == (64 * 2**20, 500_000_000)
    branch = docker.get(f"/containers/{seen['container']}/json")
    assert host["NetworkMode"] == f"container:{branch['Id']}"
    assert host["PortBindings"] in (None, {})  # no host port of its own
    # a branch container removed behind dualgit's back, then its worktree: gc takes its services too
    other = add_worktree(repo, "other", "other")
    assert dual("up", cwd=other).returncode == 0
    assert settled(other)["setup"] == "done"
    docker.request("DELETE", f"/containers/{row(other)['container']}", query={"force": 1})
    git("worktree", "remove", "--force", str(other), cwd=repo)
    done = dual("gc", cwd=repo)
    assert f"service web of worktree {other}, which is gone" in done.stdout, done.stdout
    containers, volumes = labelled(docker, repo.parent)
    assert not [c for c in [*containers, *volumes] if str(other) in json.dumps(c.get("Labels"))]
    assert row(repo)["services"][0]["state"] == "running"  # main's stays


def test_a_compose_file_is_never_used_silently(repo: Path) -> None:
    (repo / "compose.yaml").write_text("services:\n  db:\n    image: busybox:latest\n")
    done = dual("init", cwd=repo)
    assert "`git dual config add compose compose.yaml`" in done.stdout
    found = json.loads(dual("inspect", "--json", cwd=repo, env={"DOCKER_HOST": "unix:///nonexistent.sock"}).stdout)
    assert found["services"] == [] and any(n["key"] == "compose" for n in found["not_honoured"])
