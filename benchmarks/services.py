"""What a branch's own database costs.

1. Seeding: main's Postgres holds at least 1 GiB (`pgbench -i -s SCALE`); a new branch whose
   `[services.db]` says `seed = "main"` is made by `git worktree add`, and timed until it answers
   a query on that data (`git dual exec psql ...`, which waits for the seed). Baselines, in the
   same run: `pg_dump | psql` of the same database into a fresh server, and a plain `cp -a` of the
   volume into a new one, then that server started and asked the same query. Goal: at most 0.25x
   the dump and restore. The copy clones (reflinks) only where the engine's filesystem can:
   printed with the figures.
2. Waking a branch with a Postgres service: `git dual down`, then `git dual exec psql -c 'select 1'`
   (start, the services' ports listening, the query), median of ROUNDS. Goal: 2 s.
3. `git worktree add` with services declared (the hook leaves their making to the background)
   against `git worktree add` then `docker run -d` of the same image. Goal: at most 1.30x.

    .venv/bin/python benchmarks/services.py [--rounds 10] [--scale 70]
"""

from __future__ import annotations

import itertools
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _bench import cleanup, installed_copy, interleaved, new_repo, report, sh, timed

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


def option(name: str, default: int) -> int:
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def until(check: list[str], cwd: Path, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while subprocess.run(check, cwd=cwd, capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {' '.join(check)}")
        time.sleep(0.05)


def psql(dual: str, query: str) -> list[str]:
    return [dual, "exec", "-e", "PGPASSWORD=dev", "--", "psql", "-h", "db", "-U", "postgres", "-Atc", query]


def main() -> None:
    rounds, scale = option("--rounds", 10), option("--scale", 70)
    repo, plain, light = new_repo("services"), new_repo("plain"), new_repo("light")
    installed = installed_copy()
    dual = str(installed / "git-dual")
    made: list[str] = []
    try:
        (repo / ".dual.toml").write_text(CONFIG)
        sh("git", "add", ".dual.toml", cwd=repo)
        sh("git", "commit", "-q", "-m", "services", cwd=repo)
        sh(dual, "install", cwd=repo)
        (light / ".dual.toml").write_text(CONFIG)  # the same services; main has no data to copy
        sh("git", "add", ".dual.toml", cwd=light)
        sh("git", "commit", "-q", "-m", "services", cwd=light)
        sh(dual, "install", cwd=light)
        sh(dual, "up", cwd=repo)
        until(psql(dual, "select 1"), repo)
        main_db = json.loads(sh(dual, "ls", "--json", cwd=repo))[0]["services"][0]["container"]
        print(f"loading main's database: pgbench -i -s {scale} ...", flush=True)
        sh("docker", "exec", main_db, "pgbench", "-q", "-i", "-s", str(scale), "-U", "postgres", "postgres", cwd=repo)
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
            sh("docker", "run", "--rm", "-v", f"{volume}:/from:ro", "-v", f"{target}:/to", PG,
               "cp", "-a", "/from/.", "/to/", cwd=repo)
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

        # 2: a wake
        wakes = []
        for _ in range(rounds):
            sh(dual, "down", cwd=repo)
            wakes.append(timed(*psql(dual, "select 1"), cwd=repo))
        print(f"wake a branch with a Postgres service (`down`, then exec psql 'select 1'), median of {rounds}: "
              f"{statistics.median(wakes):.2f} s (p90 {sorted(wakes)[int(0.9 * (len(wakes) - 1))]:.2f} s; goal 2 s)")

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

        def add_with_services() -> float:
            i = next(counter)
            return timed("git", "worktree", "add", "-q", f"../h{i}", "-b", f"h{i}", cwd=light)

        medians = interleaved({"git worktree add + docker run -d": add_then_run,
                               "git worktree add, dualgit hook, a seeded Postgres service declared": add_with_services},
                              rounds, warmup=1)
        report(f"new worktree with a running container, median of {rounds}", medians,
               "git worktree add + docker run -d", goal=1.30)
    finally:
        if made:
            subprocess.run(["docker", "rm", "-f", *made], capture_output=True)
        subprocess.run("docker volume ls -q --filter label=dualgit-bench=1 | xargs -r docker volume rm",
                       shell=True, capture_output=True)
        for folder in (repo, plain, light):
            cleanup(folder)
        shutil.rmtree(installed.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
