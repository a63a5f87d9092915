"""`git dual doctor`: which engine dualgit reaches and why, whether it answers, whether it sees
this worktree's files and publishes ports to this host (or, on another machine's engine, whether
the sync and the forwards work: `remote/checks.py`), and whether the proxy runs for it. Each
check that fails says how to fix it, and the exit code is non-zero, so "cannot reach the engine"
has one place to be explained."""

from __future__ import annotations

import json
import os
from typing import Any

from dualgit.engine import find
from dualgit.engine.api import ApiError
from dualgit.engine.dockerpy import DockerPy
from dualgit.engine.find import Endpoint
from dualgit.errors import EXIT_ERROR, DualgitError

PROBE_IMAGE = ("busybox", "latest")  # small, and its httpd serves a folder: the mount and the port in one container
PROBE_PORT = 8080


def check(name: str, ok: bool | None, detail: str, fix: str | None = None) -> dict[str, Any]:
    """One line of the report; `ok` None: not checked, for the reason in `detail`."""
    return {"name": name, "ok": ok, "detail": detail, "fix": fix}


def report(folder: str | None = None) -> dict[str, Any]:
    """What doctor finds, as plain data (`--json` prints it as it is). `folder`: the worktree whose
    bind mount is checked (this one's, when not given)."""
    folder = folder or _worktree_here()
    sockets = [{"engine": engine, "path": path} for engine, path in find.candidates() if os.path.exists(path)]
    found: dict[str, Any] = {
        "endpoint": None, "source": None, "tls": None, "reachable": False, "error": None, "hint": None,
        "server": None, "sockets": sockets, "others": [], "checks": [], "proxy": None,
        "not_honoured": _not_honoured(folder),
        "env": {key: os.environ[key] for key in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY",
                                                 "DOCKER_CERT_PATH", "DOCKER_CONFIG") if os.environ.get(key)},
    }
    checks: list[dict[str, Any]] = found["checks"]
    named = found["engine_name"] = _engine_name(folder)  # this worktree's engine, as dualgit's config names it
    try:
        endpoint = find.chosen(named) or find.settled(find.endpoint())
        found["endpoint"], found["source"] = endpoint.url(), endpoint.source
        found["tls"] = endpoint.tls.as_dict() if endpoint.tls is not None else None
        found["others"] = [s for s in sockets if endpoint.kind != "unix" or s["path"] != endpoint.address]
        api = DockerPy(endpoint, timeout=20)
        version = api.version()
    except DualgitError as exc:
        found["error"], found["hint"] = exc.message, exc.hint
        checks.append(check("engine", False, f"does not answer: {exc.message}", exc.hint))
        found["proxy"], proxy_check = _proxy("")
        checks.append(proxy_check)
        return found
    found["reachable"] = True
    server = {key.lower(): version.get(key) for key in ("Version", "ApiVersion", "Os", "Arch")}
    server["name"] = next((c.get("Name") for c in version.get("Components") or []
                           if isinstance(c, dict) and c.get("Name")), None) or "engine"
    found["server"] = server
    checks.append(check("engine", True, f"{server['name']} {server['version']}, API {server['apiversion']}, "
                                        f"{server['os']}/{server['arch']}"))
    if _synced(endpoint, folder):
        checks.extend(_remote(api, folder))
    else:
        checks.extend(_probe(api, endpoint, folder))
    checks.extend(_undeclared(api))
    found["proxy"], proxy_check = _proxy(endpoint.url() if named == find.DEFAULT else "")
    checks.append(proxy_check)
    return found


def _engine_name(folder: str | None) -> str:
    """The engine the worktree's container is on, else the one its config names (DEFAULT outside one)."""
    if not folder:
        return find.DEFAULT
    from dualgit.config import load
    from dualgit.git.locate import locate
    from dualgit.worktrees.engines import likely

    try:
        return likely(locate(folder), load(folder))
    except DualgitError:
        return find.DEFAULT


def _synced(endpoint: Endpoint, folder: str | None) -> bool:
    """Whether this engine's worktrees are synced to it (`worktrees/sync.wanted`)."""
    from dualgit.config import load
    from dualgit.worktrees.sync import wanted

    try:
        config = load(folder) if folder else None
    except DualgitError:
        config = None
    return wanted(endpoint, config)


def _remote(api: DockerPy, folder: str | None) -> list[dict[str, Any]]:
    """The checks of a worktree on another machine's engine (`remote/checks.py`)."""
    from dualgit.git.locate import locate
    from dualgit.remote.checks import checks

    try:
        loc = locate(folder or ".")
    except DualgitError:
        return [check("sync", None, "not in a worktree: its sync is checked from inside one")]
    return [check(*found) for found in checks(api, loc)]


def _not_honoured(folder: str | None) -> list[dict[str, str]]:
    """What this worktree's config asks for and dualgit does not honour (as `inspect` says it), or why
    that can't be read."""
    if not folder:
        return []
    from dualgit.git.locate import locate
    from dualgit.worktrees.inspection import inspect

    try:
        loc = locate(folder)
    except DualgitError:
        return []  # not in a worktree: nothing of a config to say
    try:
        return list(inspect(loc).get("not_honoured") or [])
    except DualgitError as exc:
        return [{"key": "config", "source": folder, "why": exc.message}]


def _undeclared(api: DockerPy) -> list[dict[str, Any]]:
    """Servers in this worktree's container on ports .dual.toml does not declare (no URL reaches them)."""
    from dualgit.git.locate import locate
    from dualgit.worktrees import agent
    from dualgit.worktrees.inventory import list_containers

    try:
        loc = locate()
        mine = list_containers(api, loc.common_dir, loc.worktree)
    except (DualgitError, ApiError):
        return []
    found = []
    for container in mine:
        seen = agent.seen(container.name, container.http_ports, container.tcp_ports)
        for port in seen["undeclared"]:
            found.append(check("ports", True, f"something listens on :{port} in {container.name}, which .dual.toml "
                                              f"does not declare, so no URL reaches it: "
                                              f"`{seen['declare'][str(port)]}`, then `git dual up`"))
    return found


def _worktree_here() -> str:
    from dualgit.git.locate import locate

    try:
        return locate().worktree
    except DualgitError:
        return os.path.realpath(os.getcwd())


def _probe(api: DockerPy, endpoint: Endpoint, folder: str) -> list[dict[str, Any]]:
    """The bind mount and the published port, checked with one throwaway container (labelled
    `dualgit.doctor`, removed at the end) whose httpd serves `folder` read-only."""
    name, tag = PROBE_IMAGE
    image = f"{name}:{tag}"
    try:
        try:
            api.inspect_image(image)
        except ApiError:
            api.pull(name, tag)
    except (ApiError, DualgitError) as exc:
        reason = f"{image} is not on the engine and does not pull ({getattr(exc, 'message', exc)})"
        fix = f"`docker pull {image}` (or `scripts/setup`, which builds it offline), then run doctor again"
        return [check("bind mount", None, reason, fix), check("published port", None, reason, fix)]
    body = {"Image": image, "Cmd": ["httpd", "-f", "-p", str(PROBE_PORT), "-h", folder],
            "Labels": {"dualgit.doctor": "1"}, "ExposedPorts": {f"{PROBE_PORT}/tcp": {}},
            "HostConfig": {"Mounts": [{"Type": "bind", "Source": folder, "Target": folder, "ReadOnly": True}],
                           "PortBindings": {f"{PROBE_PORT}/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}}}
    try:
        made = api.create_container(body, f"dualgit-doctor-{os.getpid()}")
    except (ApiError, DualgitError) as exc:
        failed = check("bind mount", False, f"no container with a bind mount of {folder} can be made: "
                                            f"{getattr(exc, 'message', exc)}",
                       "the engine must be able to mount this folder (a remote engine cannot)")
        return [failed, check("published port", None, "not checked: no container could be made")]
    try:
        api.start(made)
        return [_mount_check(api, endpoint, made, folder), _port_check(api, made)]
    except (ApiError, DualgitError) as exc:
        return [check("bind mount", False, f"the check's container does not start: {getattr(exc, 'message', exc)}",
                      "see the engine's log"), check("published port", None, "not checked")]
    finally:
        try:
            api.remove_container(made)
        except (ApiError, DualgitError):
            pass


def _mount_check(api: DockerPy, endpoint: Endpoint, container: str, folder: str) -> dict[str, Any]:
    _code, output = api.run(container, ["ls", "-1a", folder], timeout=10)
    inside = {line.strip("\r") for line in output.decode(errors="replace").splitlines()}
    here = set(os.listdir(folder))
    if here and here <= inside:
        return check("bind mount", True, f"a container sees {folder}'s files")
    if not endpoint.is_local():
        return check("bind mount", False,
                     f"the engine at {endpoint.where()} is on another machine, so a container there does not see "
                     f"{folder}, and `files = \"bind\"` asks for bind mounts",
                     "remove `files = \"bind\"` (or set `files = \"sync\"`): worktrees are then synced to the engine")
    return check("bind mount", False, f"a container does not see {folder}'s files (the engine's machine is "
                                      "not this one, or a desktop VM does not share this folder)",
                 "share the folder with the engine's VM (Docker Desktop: Settings > Resources > File sharing; "
                 "colima: `colima start --mount`), or keep worktrees under your home folder")


def _port_check(api: DockerPy, container: str) -> dict[str, Any]:
    import http.client
    import time

    ports = (api.inspect_container(container).get("NetworkSettings") or {}).get("Ports") or {}
    bound = ports.get(f"{PROBE_PORT}/tcp") or []
    if not bound:
        return check("published port", False, "the engine published no port on 127.0.0.1",
                     "an engine that publishes ports only inside its VM cannot serve this host; see its network settings")
    host_port = int(bound[0]["HostPort"])
    deadline = time.monotonic() + 5
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", host_port, timeout=3)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return check("published port", True, f"a port published on 127.0.0.1:{host_port} answers from here")
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() > deadline:
                return check("published port", False, f"127.0.0.1:{host_port}, published by the engine, does not "
                                                      f"answer from here ({exc})",
                             "the engine's ports must reach this host's loopback (a remote engine's do not; "
                             "a VM's need its port forwarding on)")
            time.sleep(0.2)
        finally:
            conn.close()


def _proxy(engine: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from dualgit.proxy import daemon

    info = daemon.status()
    found = daemon.running()
    if not info["running"]:
        return info, check("proxy", True, "not running; the next `git dual up`, exec or `git dual urls` starts it")
    held = [p for key in ("http_ports", "tcp_ports") for p in info.get(key) or []]  # type: ignore[attr-defined]
    ports = ", ".join(f":{p}" for p in held) or "no port"
    said = daemon.other_engine(found, engine)
    if said:
        return info, check("proxy", False, f"runs (pid {info['pid']}) for another engine, {found[2] if found else ''}",
                           "`git dual proxy start` replaces it with one for this engine")
    return info, check("proxy", True, f"runs (pid {info['pid']}, dualgit {info.get('version')}), holding {ports}")


def doctor(as_json: bool = False) -> int:
    found = report()
    failed = any(c["ok"] is False for c in found["checks"])
    if as_json:
        print(json.dumps(found, indent=2))
        return EXIT_ERROR if failed else 0
    if found["endpoint"] is not None:
        print(f"engine: {found['endpoint']} ({found['source']})")
    if found["tls"]:
        tls = found["tls"]
        print(f"  TLS: CA {tls['ca'] or '(the system)'}, certificate {tls['cert'] or '(none)'} (from {tls['from']})")
    for key, value in found["env"].items():
        print(f"  {key}={value}")
    others = ", ".join(f"{s['path']} ({s['engine']})" for s in found["others"])
    if others:
        print(f"  also here: {others}")
    for line in found["checks"]:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[line["ok"]]
        print(f"{mark} {line['name']}: {line['detail']}")
        if line["fix"] and line["ok"] is not True:
            print(f"     fix: {line['fix']}")
    for item in found["not_honoured"]:
        print(f"note not honoured: {item['key']} ({item['source']}): {item['why']}")
    return EXIT_ERROR if failed else 0
