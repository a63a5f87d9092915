"""What a branch's own database costs.

1. Seeding: main's Postgres holds at least 1 GiB (`pgbench -i -s SCALE`); a new branch whose
   `[services.db]` says `seed = "main"` is made by `git worktree add`, and timed until it answers
   a query on that data (`git dual exec psql ...`, which waits for the seed). Baselines, in the
   same run: `pg_dump | psql` of the same database into a fresh server, and a plain `cp -a` of the
   volume into a new one (the server paused meanwhile, as the seed pauses it), then a server started on
   it and asked the same query. Goal: at most 0.25x
   the dump and restore. The copy clones (reflinks) only where the engine's filesystem can:
   printed with the figures.
2. Waking a branch with a Postgres service: the idle policy puts it to sleep, and a GET at its URL
   (through the proxy, which holds it while the branch, its Postgres and its `serve` start) is
   timed to the first byte of the answer. Goal: p50 <= 2 s. The floor: `docker start` of a stopped
   Postgres container until it accepts connections.
3. `git worktree add` with services declared (the hook leaves their making to the background, which
   ends before the next round) against `git worktree add` then `docker run -d` of the same image,
   and against the hook with the same port and no service. Goal: at most 1.30x.

   The seeding is measured twice: on the engine's own volumes (this machine's filesystem), and on a
   loop-mounted XFS (reflinks on) where a second, throwaway engine keeps its data (as root, with
   xfsprogs; `--no-xfs` skips it).

    .venv/bin/python benchmarks/services.py [--rounds 10] [--scale 70] [--no-xfs] [--parts seed,wake,add]
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _bench import ENV, cleanup, installed_copy, interleaved, new_repo, report, sh, timed

from dualgit.worktrees.agent import TOOLS_IMAGE

PG = "dualgit/postgres:15"
CONFIG = f'''image = "{PG}"
[services.db]
image = "{PG}"
env = {{ POSTGRES_PASSWORD = "dev" }}
ports = [5432]
volumes = {{ data = "/var/lib/postgresql/data" }}
seed = "main"
'''
QUERY = "select count(*) from pgbench_accounts"
WAKE_PORT = 3902  # not 3000: a developer's own proxy may hold that


def option(name: str, default: int) -> int:
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def until(check: list[str], cwd: Path, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while subprocess.run(check, cwd=cwd, capture_output=True, env=ENV).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {' '.join(check)}")
        time.sleep(0.05)


def psql(dual: str, query: str) -> list[str]:
    return [dual, "exec", "-e", "PGPASSWORD=dev", "--", "psql", "-h", "db", "-U", "postgres", "-Atc", query]


@contextlib.contextmanager
def xfs_engine(images: list[str]) -> Iterator[str | None]:
    """A second dockerd whose data root is a fresh loop-mounted XFS (reflinks on), with its own
    containerd, exec root, socket and network namespace; `images` loaded into it. None where that
    cannot be made here (not root, no mkfs.xfs)."""
    if os.geteuid() != 0 or not shutil.which("mkfs.xfs") or not shutil.which("dockerd"):
        print("no XFS engine: it needs root and mkfs.xfs (apt-get install xfsprogs)")
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="dualgit-bench-xfs-"))
    image, mount, sock = base / "fs.img", base / "mnt", base / "engine.sock"
    mount.mkdir()
    daemon = None
    try:
        subprocess.run(["truncate", "-s", "12G", str(image)], check=True)
        subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
        # in a network namespace of its own: its bridge, addresses and rules are its own, and the
        # engine's docker0 is not touched (a second dockerd beside it would take that bridge away)
        engine = (f"ip link set lo up && exec dockerd --data-root {mount / 'docker'} --exec-root {base / 'exec'} "
                  f"--pidfile {base / 'dockerd.pid'} --host unix://{sock}")
        daemon = subprocess.Popen(["unshare", "--net", "sh", "-c", engine], stdout=subprocess.DEVNULL,
                                  stderr=open(base / "dockerd.log", "w"))
        host = f"unix://{sock}"
        until(["docker", "-H", host, "info"], base, 60)
        subprocess.run(f"docker save {' '.join(images)} | docker -H {host} load -q", shell=True, check=True,
                       stdout=subprocess.DEVNULL)
        yield host
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=60)
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def on_engine(host: str | None) -> None:
    """Every command after this one talks to `host` (None: the default engine)."""
    for env in (os.environ, ENV):
        if host is None:
            env.pop("DOCKER_HOST", None)
        else:
            env["DOCKER_HOST"] = host


def wake(rounds: int) -> None:
    from idle import first_byte

    repo = new_repo("wakes")
    config = (f'image = "busybox:latest"\nports = [{WAKE_PORT}]\nserve = "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && '
              'exec httpd -f -p 127.0.0.1:$PORT -h /tmp/www"\n'
              'idle_after = 0\n' + CONFIG.split("\n", 1)[1])
    (repo / ".dual.toml").write_text(config)
    sh("git", "add", ".dual.toml", cwd=repo)
    sh("git", "commit", "-q", "-m", "services", cwd=repo)
    proxy = None
    floor_id = ""
    try:
        sh("git", "dual", "up", cwd=repo)
        proxy = subprocess.Popen(["git", "dual", "proxy", "run"], cwd=repo, env=ENV, stderr=subprocess.DEVNULL)
        host = f"main.wakes.localhost:{WAKE_PORT}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if first_byte(host.split(":")[0], WAKE_PORT, 5)[1].endswith(b"200 OK"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the branch never answered at its URL")
            time.sleep(0.2)
        took = []
        for _ in range(rounds):
            (repo / ".dual.toml").write_text(config.replace("idle_after = 0", "idle_after = 2"))
            until(["sh", "-c", "git dual ls --json | grep -q '\"state\": \"asleep\"'"], repo, 120)
            (repo / ".dual.toml").write_text(config)  # awake it stays, until the next round
            seconds, status = first_byte(host.split(":")[0], WAKE_PORT)
            assert status.endswith(b"200 OK"), status
            took.append(seconds)
        floor = []
        floor_id = sh("docker", "run", "-d", "--label", "dualgit-bench=1", "-e", "POSTGRES_PASSWORD=dev", PG,
                      cwd=repo).strip()
        until(["docker", "exec", floor_id, "pg_isready", "-h", "127.0.0.1"], repo)
        for _ in range(rounds):
            sh("docker", "stop", floor_id, cwd=repo)
            started = time.perf_counter()
            sh("docker", "start", floor_id, cwd=repo)
            until(["docker", "exec", floor_id, "pg_isready", "-h", "127.0.0.1"], repo)
            floor.append(time.perf_counter() - started)
        p50 = statistics.median(took)
        print(f"wake a sleeping branch with a Postgres service, GET at its URL to the first byte, {rounds} wakes: "
              f"p50 {p50:.2f} s, p95 {sorted(took)[int(0.95 * (len(took) - 1))]:.2f} s "
              f"(goal p50 <= 2 s: {'met' if p50 <= 2 else 'NOT met'}); floor, `docker start` of a stopped Postgres "
              f"until pg_isready: p50 {statistics.median(floor):.2f} s, {p50 / statistics.median(floor):.2f}x")
    finally:
        if proxy is not None:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(timeout=20)
        if floor_id:
            subprocess.run(["docker", "rm", "-f", floor_id], capture_output=True)
        cleanup(repo)


def seeding(scale: int, dual: str) -> None:
    """Part 1 on the engine DOCKER_HOST names: a seeded branch against dump and restore, and a copy."""
    repo = new_repo("services")
    made: list[str] = []
    try:
        (repo / ".dual.toml").write_text(CONFIG)
        sh("git", "add", ".dual.toml", cwd=repo)
        sh("git", "commit", "-q", "-m", "services", cwd=repo)
        sh(dual, "install", cwd=repo)
        sh(dual, "up", cwd=repo)
        until(psql(dual, "select 1"), repo)
        main_db = json.loads(sh(dual, "ls", "--json", cwd=repo))[0]["services"][0]["container"]
        print(f"loading main's database: pgbench -i -s {scale} ...", flush=True)
        sh("docker", "exec", main_db, "pgbench", "-q", "-i", "-s", str(scale), "-U", "postgres", "postgres", cwd=repo)
        # a database in its steady state, as main's is: the load's WAL is checkpointed, as the server does
        # on its own within checkpoint_timeout (else every copy of it replays a gigabyte of WAL first)
        sh("docker", "exec", main_db, "psql", "-U", "postgres", "-c", "CHECKPOINT", cwd=repo)
        size = int(sh("docker", "exec", main_db, "psql", "-U", "postgres", "-Atc",
                      "select pg_database_size('postgres')", cwd=repo))
        volume = next(v for v in sh("docker", "volume", "ls", "-q", "--filter", "label=dualgit.service=db",
                                    "--filter", f"label=dualgit.worktree={repo.resolve()}", cwd=repo).split())
        fs = sh("docker", "run", "--rm", "-v", f"{volume}:/v:ro", PG, "stat", "-f", "-c", "%T", "/v", cwd=repo).strip()
        print(f"main's database: {size / 2**30:.2f} GiB, on {fs} (the engine's volumes)")
        counter = itertools.count()

        def seeded_branch() -> float:
            i = next(counter)
            started = time.perf_counter()
            sh("git", "worktree", "add", "-q", f"../seed{i}", "-b", f"seed{i}", cwd=repo)
            until(psql(dual, QUERY), repo.parent / f"seed{i}")
            return time.perf_counter() - started

        def dump_restore() -> float:
            i = next(counter)
            fresh = sh("docker", "run", "-d", "--label", "dualgit-bench=1", "-e", "POSTGRES_PASSWORD=dev", PG,
                       cwd=repo).strip()
            made.append(fresh)
            until(["docker", "exec", fresh, "pg_isready", "-h", "127.0.0.1", "-U", "postgres"], repo)
            time.sleep(1)  # the entrypoint's first start is done
            until(["docker", "exec", fresh, "psql", "-U", "postgres", "-Atc", "select 1"], repo)
            started = time.perf_counter()
            sh("sh", "-c", f"docker exec {main_db} pg_dump -U postgres postgres | "
                           f"docker exec -i {fresh} psql -q -U postgres -d postgres >/dev/null", cwd=repo)
            sh("docker", "exec", fresh, "psql", "-U", "postgres", "-Atc", QUERY, cwd=repo)
            del i
            return time.perf_counter() - started

        def plain_copy() -> float:
            i = next(counter)
            target = f"dualgit-bench-copy-{i}"
            started = time.perf_counter()
            sh("docker", "volume", "create", "--label", "dualgit-bench=1", target, cwd=repo)
            sh("docker", "pause", main_db, cwd=repo)  # as the seed does: a copy of a server that writes meanwhile fails
            try:
                sh("docker", "run", "--rm", "-v", f"{volume}:/from:ro", "-v", f"{target}:/to", PG,
                   "cp", "-a", "/from/.", "/to/", cwd=repo)
            finally:
                sh("docker", "unpause", main_db, cwd=repo)
            fresh = sh("docker", "run", "-d", "--label", "dualgit-bench=1", "-v",
                       f"{target}:/var/lib/postgresql/data", PG, cwd=repo).strip()
            made.append(fresh)
            until(["docker", "exec", fresh, "psql", "-U", "postgres", "-Atc", QUERY], repo)
            return time.perf_counter() - started

        medians = interleaved({"pg_dump | psql into a fresh server": dump_restore,
                               "cp -a of the volume, then a server on it": plain_copy,
                               "git worktree add, a seeded branch answers": seeded_branch}, 2, warmup=0)
        report(f"a new branch with main's {size / 2**30:.2f} GiB database ({fs}), until it answers "
               f"`{QUERY}`, median of 2", medians, "pg_dump | psql into a fresh server", goal=0.25)
    finally:
        if made:
            subprocess.run(["docker", "rm", "-f", *made], capture_output=True)
        subprocess.run("docker volume ls -q --filter label=dualgit-bench=1 | xargs -r docker volume rm",
                       shell=True, capture_output=True)
        cleanup(repo)


def main() -> None:
    rounds, scale = option("--rounds", 10), option("--scale", 70)
    parts = sys.argv[sys.argv.index("--parts") + 1].split(",") if "--parts" in sys.argv else ["seed", "wake", "add"]
    plain, light, bare = new_repo("plain"), new_repo("light"), new_repo("bare")
    installed = installed_copy()
    dual = str(installed / "git-dual")
    made: list[str] = []
    try:
        if "seed" in parts:
            seeding(scale, dual)
        if "seed" in parts and "--no-xfs" not in sys.argv:
            with xfs_engine([PG, "busybox:latest", TOOLS_IMAGE]) as host:
                if host is not None:
                    on_engine(host)
                    try:
                        seeding(scale, dual)
                    finally:
                        on_engine(None)

        (light / ".dual.toml").write_text(CONFIG)  # the same services; main has no data to copy
        sh("git", "add", ".dual.toml", cwd=light)
        sh("git", "commit", "-q", "-m", "services", cwd=light)
        sh(dual, "install", cwd=light)
        (bare / ".dual.toml").write_text(f'image = "{PG}"\ntcp_ports = [5432]\n')  # the same, with no service
        sh("git", "add", ".dual.toml", cwd=bare)
        sh("git", "commit", "-q", "-m", "no services", cwd=bare)
        sh(dual, "install", cwd=bare)
        counter = itertools.count()

        if "wake" in parts:  # 2: a wake through the proxy
            wake(rounds)
        if "add" not in parts:
            return

        # 3: what services cost `git worktree add`
        no_hooks = plain / ".no-hooks"
        no_hooks.mkdir()

        def add_then_run() -> float:
            i = next(counter)
            started = time.perf_counter()
            sh("git", "-c", f"core.hooksPath={no_hooks}", "worktree", "add", "-q", f"../p{i}", "-b", f"p{i}",
               cwd=plain)
            made.append(sh("docker", "run", "-d", "--init", "-p", "127.0.0.1::3000", "--label", "dualgit-bench=1",
                           PG, "tail", "-f", "/dev/null", cwd=plain).strip())
            return time.perf_counter() - started

        def add_with_hook(repo: Path) -> float:
            i = next(counter)
            took = timed("git", "worktree", "add", "-q", f"../h{i}", "-b", f"h{i}", cwd=repo)
            # untimed: the branch's background work (its Postgres made and started) ends before the next
            # round, as when a person adds one branch at a time, so that no round pays for another's
            tree, deadline = str((repo.parent / f"h{i}").resolve()), time.monotonic() + 120
            while not any(r["worktree"] == tree and r["setup"] in ("done", "failed")
                          for r in json.loads(sh("git", "dual", "ls", "--json", cwd=repo))):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{tree}'s setup did not end")
                time.sleep(0.2)
            return took

        medians = interleaved({"git worktree add + docker run -d": add_then_run,
                               "git worktree add, dualgit hook, no services (5432 a tcp_port)":
                                   lambda: add_with_hook(bare),
                               "git worktree add, dualgit hook, a seeded Postgres service declared":
                                   lambda: add_with_hook(light)}, rounds, warmup=1)
        report(f"new worktree with a running container, median of {rounds}", medians,
               "git worktree add + docker run -d", goal=1.30)
    finally:
        if made:
            subprocess.run(["docker", "rm", "-f", *made], capture_output=True)
        subprocess.run("docker volume ls -q --filter label=dualgit-bench=1 | xargs -r docker volume rm",
                       shell=True, capture_output=True)
        for folder in (plain, light, bare):
            cleanup(folder)
        shutil.rmtree(installed.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
