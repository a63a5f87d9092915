"""Fifty branches on one machine: memory with every branch awake against the idle policy, how long
a sleeping branch takes to answer its first request, and what the proxy itself costs at 50 routes.

    .venv/bin/python benchmarks/idle.py [--branches 50] [--wakes 25] [--vite 4] [--vite-rounds 5]

- 50 worktrees of busybox:latest, each with `serve` holding BALLAST MiB (a file in its /dev/shm,
  which its cgroup is charged for) and then running httpd on 127.0.0.1 inside, as Vite does.
- Memory is the containers' cgroup memory, as the engine's stats call gives it (`memory_stats.usage`),
  summed: once with all awake, once after the idle policy (`idle_after`) put them to sleep.
- Wake latency is from the request (a plain GET, held by the proxy while the branch wakes) to the
  first byte of the response, for busybox httpd and for real Vite servers (dualgit/node:20, Vite from
  the test cache, node_modules hard-linked), each branch asleep before each wake.
  Goals: p50 <= 1.5 s (busybox), <= 3 s (Vite); 0 bytes for a sleeping branch.
- The proxy's own resident memory, and its CPU time over a quiet stretch with 50 routes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

from _bench import ENV, cleanup, new_repo, sh

from dualgit.engine.api import DockerAPI

PORT = 3900  # not 3000: a developer's own proxy may hold that
VITE_PORT = 3901
BALLAST = 16  # MiB each busybox server holds
IDLE = 10  # seconds: the bench's idle_after
VITE = "8.3.8"


def first_byte(host: str, port: int, timeout: float = 60) -> tuple[float, bytes]:
    """Seconds from sending a GET to the first byte of the answer, and the answer's status line."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        first = conn.recv(1)
        took = time.perf_counter() - started
        rest = first
        while b"\r\n" not in rest:
            more = conn.recv(4096)
            if not more:
                break
            rest += more
    return took, rest.split(b"\r\n", 1)[0]


def rows(repo: Path) -> list[dict[str, object]]:
    return list(json.loads(sh("git", "dual", "ls", "--json", cwd=repo)))


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting: {what}")
        time.sleep(0.5)


def memory(api: DockerAPI, names: list[str]) -> list[int]:
    """Each container's cgroup memory now, in bytes (0 for a stopped one)."""
    out = []
    for name in names:
        stats = api.request("GET", f"/containers/{name}/stats", query={"stream": "false", "one-shot": "true"}).json()
        out.append(int((stats.get("memory_stats") or {}).get("usage") or 0))
    return out


def proc(pid: int) -> tuple[int, float]:
    """(resident KiB, CPU seconds) of a process."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline(count: int) -> list[float]:
    """The floor under a wake: the engine starts a stopped container whose server answers at once."""
    name = f"dualgit-bench-floor-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--init", "--name", name, "-p", "127.0.0.1::80", "busybox:latest", "httpd",
                    "-f", "-p", "80"], check=True, capture_output=True)
    try:
        took = []
        for _ in range(count):
            subprocess.run(["docker", "stop", "-t", "1", name], check=True, capture_output=True)
            started = time.perf_counter()
            subprocess.run(["docker", "start", name], check=True, capture_output=True)
            port = int(sh("docker", "port", name, "80/tcp", cwd="/").strip().rsplit(":", 1)[1])
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                        if conn.recv(1):
                            break
                except OSError:
                    pass
                time.sleep(0.01)
            took.append(time.perf_counter() - started)
        return took
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def add_branches(repo: Path, count: int, config: str, files: dict[str, str], prefix: str) -> list[Path]:
    trees = []
    for i in range(count):
        tree = repo.parent / f"{prefix}{i:02d}"
        sh("git", "worktree", "add", "-q", str(tree), "-b", f"{prefix}{i:02d}", cwd=repo)  # the hook makes it
        for name, text in files.items():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_text(text)
        (tree / ".dual.toml").write_text(config)
        trees.append(tree)
    return trees


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--wakes", type=int, default=25)
    parser.add_argument("--vite", type=int, default=4)
    parser.add_argument("--vite-rounds", type=int, default=5)
    given = parser.parse_args()
    api = DockerAPI()
    repo = new_repo("fifty")
    serve = f"head -c {BALLAST}m /dev/zero > /dev/shm/ballast; exec httpd -f -p 127.0.0.1:$PORT -h www"
    config = f'image = "busybox:latest"\nports = [{PORT}]\nserve = "{serve}"\nidle_after = 0\n'
    (repo / ".dual.toml").write_text(config)
    (repo / "www").mkdir()
    (repo / "www" / "index.html").write_text("ok\n")
    sh("git", "add", ".", cwd=repo)
    sh("git", "commit", "-q", "-m", "site", cwd=repo)
    sh("git", "dual", "install", cwd=repo)
    proxy = None
    try:
        began = time.monotonic()
        trees = [repo, *add_branches(repo, given.branches - 1, config, {"www/index.html": "ok\n"}, "b")]
        for tree in trees:
            sh("git", "dual", "up", cwd=tree)
        print(f"{len(trees)} branches made in {time.monotonic() - began:.0f}s")
        wait_until(lambda: all(any(s["detail"].startswith("listening") for s in r["serve"])  # type: ignore[attr-defined]
                               for r in rows(repo)), 300, "every server listening")
        proxy = subprocess.Popen(["git", "dual", "proxy", "run"], cwd=repo, env=ENV, stderr=subprocess.DEVNULL)
        names = [str(r["container"]) for r in rows(repo)]
        slug = {str(r["container"]): str(r["branch"]).replace("/", "-") for r in rows(repo)}
        wait_until(lambda: all(first_byte(f"{slug[n]}.fifty.localhost", PORT)[1].endswith(b"200 OK") for n in names),
                   120, "every URL answering")
        pid = int(json.loads(sh("git", "dual", "proxy", "status", "--json", cwd=repo))["pid"])
        awake = memory(api, names)
        rss, cpu0 = proc(pid)
        time.sleep(20)
        rss_quiet, cpu1 = proc(pid)
        print(f"\nproxy at {len(names)} routes: {rss / 1024:.0f} MiB resident; CPU {100 * (cpu1 - cpu0) / 20:.2f}% of a "
              f"core over 20 quiet seconds (idle clocks looking once a second); {rss_quiet / 1024:.0f} MiB after")

        for tree in trees:  # the idle policy on: .dual.toml's idle_after, read again by the proxy
            (tree / ".dual.toml").write_text(config.replace("idle_after = 0", f"idle_after = {IDLE}"))
        wait_until(lambda: all(r["state"] == "asleep" for r in rows(repo)), IDLE + 120, "every branch asleep")
        asleep = memory(api, names)
        total_awake, total_asleep = sum(awake), sum(asleep)
        print(f"\ncgroup memory, {len(names)} branches each holding {BALLAST} MiB")
        print(f"  all awake                      {total_awake / 2**20:8.0f} MiB  1.00x")
        print(f"  idle policy, all asleep        {total_asleep / 2**20:8.0f} MiB  {total_asleep / total_awake:.2f}x  "
              f"(largest sleeping branch: {max(asleep)} bytes; goal 0: {'met' if max(asleep) == 0 else 'NOT met'})")

        took = []
        for name in names[: given.wakes]:
            seconds, status = first_byte(f"{slug[name]}.fifty.localhost", PORT)
            assert status.endswith(b"200 OK"), status
            took.append(seconds)
        p50, p95 = statistics.median(took), pct(took, 95)
        floor = baseline(len(took))
        print(f"\nwake, busybox httpd, {len(took)} wakes: first byte p50 {p50:.2f}s p95 {p95:.2f}s, "
              f"{p50 / statistics.median(floor):.2f}x the floor (goal p50 <= 1.5s: {'met' if p50 <= 1.5 else 'NOT met'})")
        print(f"  floor: `docker start` of a stopped busybox httpd container, then GETs on its published port "
              f"until it answers: p50 {statistics.median(floor):.2f}s p95 {pct(floor, 95):.2f}s")
        vite(repo, given.vite, given.vite_rounds)
    finally:
        if proxy is not None:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(timeout=20)
        cleanup(repo)


def vite(repo: Path, count: int, rounds: int) -> None:
    cache = Path(os.environ.get("DUALGIT_TEST_CACHE", Path.home() / ".cache" / "dualgit-tests"))
    modules = cache / f"vite-{VITE}" / "node_modules"
    if count == 0 or not (modules / "vite").exists():
        print(f"\nwake, Vite: skipped (no {modules}: the browser tests install it)")
        return
    config = (f'image = "dualgit/node:20"\nports = [{VITE_PORT}]\nserve = "npm run dev -- --port $PORT --strictPort"\n'
              f"idle_after = {IDLE}\n")
    files = {"package.json": json.dumps({"name": "v", "private": True, "type": "module", "scripts": {"dev": "vite"}}),
             "index.html": "<!doctype html><h1>vite</h1><script type=module src=/main.js></script>\n",
             "main.js": "console.log('hi')\n"}
    trees = add_branches(repo, count, config, files, "vite")
    for tree in trees:
        subprocess.run(["cp", "-al", str(modules), str(tree / "node_modules")], check=True)
        sh("git", "dual", "up", cwd=tree)
    host = {t: f"vite{i:02d}.fifty.localhost" for i, t in enumerate(trees)}
    wait_until(lambda: all(first_byte(host[t], VITE_PORT)[1].endswith(b"200 OK") for t in trees), 180,
               "every Vite answering")
    took = []
    for _ in range(rounds):
        wait_until(lambda: all(r["state"] == "asleep" for r in rows(repo) if str(r["branch"]).startswith("vite")),
                   IDLE + 120, "every Vite branch asleep")
        for tree in trees:
            seconds, status = first_byte(host[tree], VITE_PORT)
            assert status.endswith(b"200 OK"), status
            took.append(seconds)
    p50, p95 = statistics.median(took), pct(took, 95)
    print(f"\nwake, Vite {VITE} ({count} branches), {len(took)} wakes: first byte p50 {p50:.2f}s p95 {p95:.2f}s "
          f"(goal p50 <= 3s: {'met' if p50 <= 3 else 'NOT met'})")
    for tree in trees:
        shutil.rmtree(tree / "node_modules", ignore_errors=True)


if __name__ == "__main__":
    main()
