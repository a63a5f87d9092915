"""`git dual doctor`: which engine dualgit reaches, what said so, whether it answers, and what
else is on this machine, so that "cannot reach the engine" has one place to be explained."""

from __future__ import annotations

import json
import os
from typing import Any

from dualgit.engine import find
from dualgit.engine.api import DockerAPI
from dualgit.errors import EXIT_ERROR, DualgitError


def report() -> dict[str, Any]:
    """What doctor finds, as plain data (`--json` prints it as it is)."""
    found: dict[str, Any] = {
        "endpoint": None, "source": None, "reachable": False, "error": None, "hint": None, "server": None,
        "sockets": [{"engine": engine, "path": path} for engine, path in find.candidates() if os.path.exists(path)],
        "env": {key: os.environ[key] for key in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CONFIG")
                if os.environ.get(key)},
    }
    try:
        endpoint = find.endpoint()
        found["endpoint"], found["source"] = endpoint.url(), endpoint.source
        version = DockerAPI(endpoint).get("/version")
    except DualgitError as exc:
        found["error"], found["hint"] = exc.message, exc.hint
        return found
    found["reachable"] = True
    found["server"] = {key.lower(): version.get(key) for key in ("Version", "ApiVersion", "Os", "Arch")}
    found["server"]["name"] = next((c.get("Name") for c in version.get("Components") or []
                                    if isinstance(c, dict) and c.get("Name")), None) or "engine"
    return found


def doctor(as_json: bool = False) -> int:
    found = report()
    if as_json:
        print(json.dumps(found, indent=2))
        return 0 if found["reachable"] else EXIT_ERROR
    if found["endpoint"] is not None:
        print(f"engine: {found['endpoint']} ({found['source']})")
    if found["reachable"]:
        server = found["server"]
        print(f"  answers: {server['name']} {server['version']}, API {server['apiversion']}, "
              f"{server['os']}/{server['arch']}")
    else:
        print(f"  does not answer: {found['error']}")
        if found["hint"]:
            print(f"  hint: {found['hint']}")
    for key, value in found["env"].items():
        print(f"{key}={value}")
    sockets = ", ".join(f"{s['path']} ({s['engine']})" for s in found["sockets"]) or "none"
    print(f"sockets here: {sockets}")
    return 0 if found["reachable"] else EXIT_ERROR
