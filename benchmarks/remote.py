"""A branch on another machine's engine: how long an edit takes to arrive, and what the proxy's
way there adds to a request.

The remote is the tests' (`tests/engines.RemoteEngine`): a second dockerd with its own filesystem
and network namespace, reached over ssh on loopback, so the figures hold no network round trip;
on a real network add it to each (an edit: one; a new connection: about three).

1. Edits, 50 each way: a file written in the worktree here, timed until it is in the volume there
   (read in the volume's own folder on the remote's disk, so the measure adds no exec); and one
   written in the volume there, timed until it is here. Goal: p50 <= 1 s, p95 <= 2 s. Baseline:
   `docker cp` of the same file into the container (what a person would do by hand), per edit.
2. A GET through the proxy here, the same busybox httpd serving the same page, on the local engine
   and on the remote one: p50 over 50 requests on new connections, and over 50 on one kept open
   (busybox httpd closes each: the proxy's way there is made anew each time), 0.2 s apart.
   Reported: the remote's added p50.

    .venv/bin/python benchmarks/remote.py [--rounds 50]
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _bench import ENV, cleanup, new_repo, rounds_arg, sh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from engines import RemoteEngine  # noqa: E402 - the tests' remote machine

PORT = 3903  # not 3000: a developer's own proxy may hold that


def percentile(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))]


def until(check: object, seconds: float = 30, what: str = "") -> float:
    started = time.perf_counter()
    while not check():  # type: ignore[operator]
        if time.perf_counter() - started > seconds:
            raise SystemExit(f"gave up waiting for {what or check}")
        time.sleep(0.005)
    return time.perf_counter() - started


def branch(repo: Path, name: str, env: dict[str, str]) -> Path:
    tree = repo.parent / name
    subprocess.run(["git", "worktree", "add", "-q", str(tree), "-b", name], cwd=repo, env=env, check=True,
                   capture_output=True)
    subprocess.run(["git", "dual", "exec", "true"], cwd=tree, env=env, check=True, capture_output=True)
    return tree


def volume_folder(remote: RemoteEngine, env: dict[str, str], tree: Path) -> Path:
    """The worktree's volume as the remote's disk holds it (under its data root)."""
    name = subprocess.run(["docker", "-H", remote.host, "volume", "ls", "-q", "--filter",
                           f"label=dualgit.worktree={tree}"], capture_output=True, text=True, check=True).stdout.split()
    found = [n for n in name if "sync-worktree" in n]
    return remote.base / "data" / "volumes" / found[0] / "_data"


def edits(remote: RemoteEngine, env: dict[str, str], tree: Path, rounds: int) -> None:
    there = volume_folder(remote, env, tree)
    container = next(r for r in json.loads(sh("git", "dual", "ls", "--json", cwd=tree))
                     if r["worktree"] == str(tree))["container"]
    out, back, copied = [], [], []
    import random

    for i in range(rounds):
        time.sleep(random.uniform(0, 1.5))  # at any moment of the sync's one-second round, as a person's edit
        token = f"edit {i} {time.time_ns()}\n"
        (tree / "edited.txt").write_text(token)
        out.append(until(lambda t=token: (there / "edited.txt").exists() and (there / "edited.txt").read_text() == t,
                         what=f"edit {i} here to arrive there"))
        time.sleep(random.uniform(0, 1.5))
        token = f"made there {i} {time.time_ns()}\n"
        (there / "made.txt").write_text(token)
        back.append(until(lambda t=token: (tree / "made.txt").exists() and (tree / "made.txt").read_text() == t,
                          what=f"file {i} there to arrive here"))
        started = time.perf_counter()
        subprocess.run(["docker", "-H", remote.host, "cp", str(tree / "edited.txt"), f"{container}:/tmp/edited.txt"],
                       check=True, capture_output=True)
        copied.append(time.perf_counter() - started)
    for what, took in (("an edit here, in the volume there", out), ("a file written there, here", back)):
        p50, p95 = statistics.median(took), percentile(took, 0.95)
        met = "met" if p50 <= 1 and p95 <= 2 else "NOT met"
        print(f"{what}, {rounds} edits: p50 {p50:.2f} s, p95 {p95:.2f} s (goal p50 <= 1 s, p95 <= 2 s: {met}); "
              f"`docker cp` of the file, by hand: p50 {statistics.median(copied):.2f} s, "
              f"{p50 / statistics.median(copied):.2f}x")


def get_times(host: str, rounds: int, keep_open: bool) -> list[float]:
    took = []
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30) if keep_open else None
    for _ in range(rounds):
        one = conn or http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        started = time.perf_counter()
        one.request("GET", "/", headers={"Host": f"{host}:{PORT}"})
        response = one.getresponse()
        body = response.read()
        took.append(time.perf_counter() - started)
        assert response.status == 200 and body == b"page\n", (response.status, body)
        if conn is None:
            one.close()
        time.sleep(0.2)  # a person's clicks, not a load test: the relays made ahead are made again between
    if conn is not None:
        conn.close()
    return took


def main() -> None:
    rounds = rounds_arg(50)
    remote = RemoteEngine(["busybox:latest"])
    local_repo, remote_repo = new_repo("local"), new_repo("far")
    proxies = []
    try:
        config = f'image = "busybox:latest"\nports = [{PORT}]\nserve = "httpd -f -p {PORT} -h www"\n'
        runs = {}
        for repo, host in ((local_repo, None), (remote_repo, remote.ssh_host)):
            env = dict(ENV)  # DUALGIT_PROXY=0: the proxy is the one each part starts, not a daemon
            if host is not None:
                env.update(DOCKER_HOST=host, PATH=f"{remote.bin}{os.pathsep}{ENV['PATH']}")
            (repo / "www").mkdir()
            (repo / "www" / "index.html").write_text("page\n")
            (repo / ".dual.toml").write_text(config)
            subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
            subprocess.run(["git", "commit", "-qm", "page"], cwd=repo, env=env, check=True)
            subprocess.run(["git", "dual", "install"], cwd=repo, env=env, check=True, capture_output=True)
            tree = branch(repo, "feat", env)
            runs[repo.name] = (tree, env)
        tree, env = runs["far"]
        for key in ("DOCKER_HOST", "PATH"):
            os.environ[key] = env[key]
        edits(remote, env, tree, rounds)
        for key in ("DOCKER_HOST",):
            os.environ.pop(key)
        os.environ["PATH"] = ENV["PATH"]

        results = {}
        for name, (tree, env) in runs.items():
            proxy = subprocess.Popen(["git", "dual", "proxy", "run"], cwd=tree, env={**env, "DUALGIT_PROXY": "1"},
                                     stderr=open(f"/tmp/bench-proxy-{name}.log", "w"))
            proxies.append(proxy)
            host = f"feat.{name}.localhost"
            until(lambda h=host: _answers(h), 60)
            get_times(host, 5, False)
            results[name] = (statistics.median(get_times(host, rounds, False)),
                             statistics.median(get_times(host, rounds, True)))
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(timeout=20)
        (local_new, local_open), (far_new, far_open) = results["local"], results["far"]
        print(f"GET through the proxy, {rounds} each, p50: local engine {local_new * 1000:.1f} ms on a new connection, "
              f"{local_open * 1000:.1f} ms on one kept open; remote engine over ssh {far_new * 1000:.1f} ms and "
              f"{far_open * 1000:.1f} ms: added {(far_new - local_new) * 1000:.1f} ms per new connection, "
              f"{(far_open - local_open) * 1000:.1f} ms per request on an open one ({far_new / local_new:.1f}x, "
              f"{far_open / local_open:.1f}x)")
    finally:
        for proxy in proxies:
            if proxy.poll() is None:
                proxy.send_signal(signal.SIGTERM)
                proxy.wait(timeout=20)
        for repo in (local_repo, remote_repo):
            env = runs.get(repo.name, (None, ENV))[1] if "runs" in locals() else ENV
            for tree in repo.parent.iterdir():
                if tree != repo and (tree / ".git").exists():
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo, env=env,
                                   capture_output=True)
            subprocess.run(["git", "dual", "gc"], cwd=repo, env=env, capture_output=True)
            cleanup(repo)
        remote.close()


def _answers(host: str) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
        conn.request("GET", "/", headers={"Host": f"{host}:{PORT}"})
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


if __name__ == "__main__":
    main()
