"""Compose files read as `docker compose` reads them, into a branch's services (`Service`).

dualgit implements the compose spec's rules for what a branch needs rather than driving a compose
binary: each branch's services must join its container's namespace and carry its labels, which
compose does not do, and a compose binary is not on every machine (Debian 12 ships only v1).
Honoured: several files merged in order, `extends`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
`${VAR:?error}` and `$$` from the project's `.env` (not from the host's environment: the files
sit in the worktree, which a container writes, and a host secret must not flow into a container
for the asking), profiles (`COMPOSE_PROFILES` in `.env`, or `compose_profiles` in .dual.toml),
`depends_on` with its conditions, healthchecks, `environment`, `env_file`, `command`,
`entrypoint`, `user`, `restart`, `ports` (the container's side: host ports are never taken), named
volumes, bind mounts inside the worktree, `build`, and memory and CPU limits; `x-dualgit: {seed:
main, http: [8025]}` seeds a service's volumes and gives its HTTP ports URLs. Other keys are named,
one line each.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

from dualgit.config.services import CONDITIONS, Health, Service, check_depends, http_ports, inside_path, seconds
from dualgit.errors import DualgitError

VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
HONOURED = {"image", "build", "environment", "env_file", "command", "entrypoint", "ports", "expose", "volumes",
            "healthcheck", "depends_on", "profiles", "extends", "user", "mem_limit", "cpus", "deploy",
            "container_name", "restart", "working_dir", "networks", "hostname", "labels", "init", "stop_signal",
            "stop_grace_period", "shm_size", "tty", "stdin_open"}
IGNORED = {"container_name": "each branch names its own", "networks": "a branch's services share its namespace",
           "hostname": "a branch's services share its hostname",
           "labels": "dualgit labels them", "init": "not applied", "stop_signal": "the image's is used",
           "stop_grace_period": "not applied", "shm_size": "not applied", "tty": "not applied",
           "stdin_open": "not applied", "working_dir": "the image's is used", "expose": "every port is the branch's"}


DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def unused_files(worktree: str, used: list[str]) -> list[str]:
    """The compose files at the worktree's root (by compose's default names) that nothing opts in:
    never used silently, so said by `init`, `inspect` and `doctor`."""
    return [name for name in DEFAULT_FILES if os.path.isfile(os.path.join(worktree, name))
            and os.path.normpath(name) not in {os.path.normpath(u) for u in used}]


def read_env(path: str) -> dict[str, str]:
    """A `.env` file's variables (KEY=VALUE lines, `export` and quotes allowed); {} when there is none."""
    found: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return found
    except OSError as exc:
        raise DualgitError(f"cannot read {path}: {exc}") from None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        found[key.strip()] = value
    return found


def interpolate(value: Any, env: dict[str, str], at: str) -> Any:
    """Compose's variables in every string of `value` (keys too), from `env`."""
    if isinstance(value, dict):
        return {interpolate(k, env, at): interpolate(v, env, at) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, at) for v in value]
    if not isinstance(value, str) or "$" not in value:
        return value

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name = match[1] or match[4]
        op, word = match[2], match[3] or ""
        have = env.get(name)
        if op is None:
            return have or ""
        word = interpolate(word, env, at)
        unset = have is None or (op.startswith(":") and have == "")
        if op.endswith("-"):
            return str(word) if unset else str(have)
        if op.endswith("+"):
            return "" if unset else str(word)
        if unset:  # ?
            raise DualgitError(f"{at}: ${{{name}}} is required: {word or 'it is not set'}",
                               hint=f"set {name} in the .env file beside the compose file")
        return str(have)

    return VARIABLE.sub(one, value)


def _positions(text: str) -> dict[str, tuple[int, int]]:
    """Where each service's key is written: name -> (line, column), 1-based."""
    import yaml

    found: dict[str, tuple[int, int]] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return found
    if not isinstance(root, yaml.MappingNode):
        return found
    for key, value in root.value:
        if key.value == "services" and isinstance(value, yaml.MappingNode):
            for name, _ in value.value:
                found[str(name.value)] = (name.start_mark.line + 1, name.start_mark.column + 1)
    return found


def _load(path: str, rel: str, env: dict[str, str], source: str) -> tuple[dict[str, Any], dict[str, str]]:
    """One file, interpolated, and where each of its services is written (FILE:LINE:COLUMN)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise DualgitError(f"{source}: cannot read compose file {rel} ({exc.strerror})",
                           hint=f"name a compose file of the worktree in {source}") from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{rel}:{mark.line + 1}:{mark.column + 1}" if mark else rel
        raise DualgitError(f"{where}: {exc.problem}", hint="fix the YAML there") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services", {}), dict):
        raise DualgitError(f"{rel}: a compose file is a mapping with `services:`", hint="see the compose spec")
    places = {name: f"{rel}:{line}:{col}" for name, (line, col) in _positions(text).items()}
    return interpolate(doc, env, rel), places


LIST_MERGED = ("ports", "expose", "volumes", "env_file", "profiles", "dns")


def _environment(value: Any) -> dict[str, str]:
    if isinstance(value, list):
        return dict((str(v).split("=", 1) + [""])[:2] for v in value)
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    return {}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """One service's definition over another's, as compose merges files and `extends`: mappings
    merged, `environment` by key, ports and volumes appended, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if key in ("environment", "labels") and key in out:
            out[key] = {**_environment(out[key]), **_environment(value)}
        elif key in LIST_MERGED and isinstance(out.get(key), list) and isinstance(value, list):
            out[key] = [*out[key], *(v for v in value if v not in out[key])]
        elif isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("build",):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load(worktree: str, files: list[str], profiles: list[str] | None = None, source: str = ".dual.toml",
         ) -> tuple[list[Service], list[str], dict[str, dict[str, Any]]]:
    """The services of `files` (relative to the worktree, merged in order; named by `source`), those
    whose profiles are off left out; the lines that say what is not honoured; and each service's
    merged definition."""
    root = os.path.realpath(worktree)
    first = _inside(root, files[0], source)
    project = os.path.dirname(first)
    env = read_env(os.path.join(project, ".env"))
    active = set(profiles or []) | {p for p in env.get("COMPOSE_PROFILES", "").split(",") if p}
    merged: dict[str, dict[str, Any]] = {}
    places: dict[str, str] = {}
    for rel in files:
        doc, where = _load(_inside(root, rel, source), rel, env, source)
        for name, given in (doc.get("services") or {}).items():
            if not isinstance(given, dict):
                raise DualgitError(f"{where.get(name, rel)}: service {name} is not a mapping", hint="see the compose spec")
            merged[name] = merge(merged.get(name, {}), given)
            places.setdefault(name, where.get(name, rel))
            places.setdefault(f"{name}@dir", os.path.dirname(rel))
    for name in list(merged):
        merged[name] = _extended(root, merged, name, places, env, (), source)
    notes: list[str] = []
    found = []
    for name, given in merged.items():
        wanted = given.get("profiles") or []
        if wanted and not active & set(wanted):
            continue
        found.append(_service(root, name, given, places[name], places[f"{name}@dir"], notes))
    kept = {s.name for s in found}
    found = [Service(**{**s.__dict__, "depends_on": {k: v for k, v in s.depends_on.items() if k in kept}})
             for s in found]  # a dependency in a profile that is off is not waited for
    check_depends(found)
    return found, notes, merged


def _inside(root: str, rel: str, source: str) -> str:
    """A compose file's path (relative to the worktree), which must stay inside it."""
    path = os.path.realpath(os.path.join(root, rel))
    if not path.startswith(root.rstrip("/") + "/"):
        raise DualgitError(f"{source}: compose file {rel} is outside the worktree",
                           hint="name a compose file of the worktree: the files that name it are the container's to write")
    return path


def _extended(root: str, merged: dict[str, dict[str, Any]], name: str, places: dict[str, str],
              env: dict[str, str], seen: tuple[str, ...], source: str) -> dict[str, Any]:
    given = merged[name]
    ext = given.get("extends")
    if ext is None:
        return given
    if name in seen:
        raise DualgitError(f"{places.get(name, name)}: `extends` goes round in a circle: {' -> '.join([*seen, name])}",
                           hint="drop one of those extends")
    base_name = ext if isinstance(ext, str) else ext.get("service")
    if isinstance(ext, dict) and ext.get("file"):
        rel = os.path.normpath(os.path.join(places.get(f"{name}@dir", ""), str(ext["file"])))
        doc, _ = _load(_inside(root, rel, source), rel, env, source)
        base = (doc.get("services") or {}).get(base_name)
    else:
        base = _extended(root, merged, base_name, places, env, (*seen, name), source) if base_name in merged else None
    if not isinstance(base, dict):
        raise DualgitError(f"{places.get(name, name)}: service {name} extends {base_name}, which is not there",
                           hint="name a service of that file")
    base = {k: v for k, v in base.items() if k not in ("depends_on", "extends")}
    return merge(base, {k: v for k, v in given.items() if k != "extends"})


def _service(root: str, name: str, given: dict[str, Any], at: str, folder: str, notes: list[str]) -> Service:
    from dualgit.config import cpus, memory

    def rel(path: str) -> str:
        return os.path.normpath(os.path.join(folder, path))

    for key in given:
        if key.startswith("x-"):
            continue  # extensions: `x-dualgit` is dualgit's, the others are someone else's
        if key not in HONOURED:
            notes.append(f"{at}: service {name}'s `{key}` is not honoured")
        elif key in IGNORED:
            notes.append(f"{at}: service {name}'s `{key}` is not honoured: {IGNORED[key]}")
    if "image" not in given and "build" not in given:
        raise DualgitError(f"{at}: service {name} has no `image` or `build`", hint="give it one, as compose needs")
    build = None
    if "build" in given:
        b = given["build"]
        b = {"context": b} if isinstance(b, str) else dict(b)
        context = rel(str(b.get("context", ".")))
        build = {"dockerfile": os.path.normpath(os.path.join(context, str(b.get("dockerfile", "Dockerfile")))),
                 "context": context, "args": _environment(b.get("args")), "target": b.get("target")}
    env: dict[str, str] = {}
    files = given.get("env_file") or []
    for item in [files] if isinstance(files, str) else files:
        path = item if isinstance(item, str) else item.get("path")
        required = not isinstance(item, dict) or item.get("required", True)
        full = os.path.realpath(os.path.join(root, rel(str(path))))
        if not full.startswith(root.rstrip("/") + "/"):
            raise DualgitError(f"{at}: service {name}'s env_file {path} is outside the worktree",
                               hint="keep it in the worktree")
        if required and not os.path.exists(full):
            raise DualgitError(f"{at}: service {name}'s env_file {path} is missing", hint="make it, or drop it")
        env.update(read_env(full))
    env.update(_environment(given.get("environment")))
    ports: list[int] = []
    for port in given.get("ports") or []:
        target = port.get("target") if isinstance(port, dict) else str(port).split("/")[0].rsplit(":", 1)[-1]
        number = int(str(target).split("-")[0]) if str(target).split("-")[0].isdigit() else 0
        if not 0 < number < 65536:
            raise DualgitError(f"{at}: service {name}'s port {port!r} is not one dualgit can read",
                               hint='write it as "5432" or "5432:5432"')
        if number not in ports:
            ports.append(number)
    volumes: dict[str, str] = {}
    binds: list[tuple[str, str, bool]] = []
    for entry in given.get("volumes") or []:
        if isinstance(entry, dict):
            kind, source, target = entry.get("type", "volume"), entry.get("source"), entry.get("target")
            read_only = bool(entry.get("read_only"))
        else:
            parts = str(entry).split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            kind = "bind" if source and (source.startswith((".", "/", "~"))) else "volume"
        inside = inside_path(target)
        if inside is None:
            raise DualgitError(f"{at}: service {name} mounts at {target!r}, which is not a folder below the "
                               "container's root", hint="give an absolute path inside it")
        if kind == "bind":
            host = os.path.realpath(os.path.join(root, rel(str(source))))
            if host != root and not host.startswith(root.rstrip("/") + "/"):
                notes.append(f"{at}: service {name}'s bind mount {source} is outside the worktree: not honoured")
                continue
            binds.append((os.path.relpath(host, root) if host != root else "", inside, read_only))
        elif kind == "volume":
            key = re.sub(r"[^a-z0-9_-]", "-", str(source or inside.strip("/")).lower())[:30] or "v"
            volumes[key] = inside
        else:
            notes.append(f"{at}: service {name}'s {kind} mount at {target} is not honoured")
    limits = ((given.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    mem = limits.get("memory", given.get("mem_limit"))
    cpu = limits.get("cpus", given.get("cpus"))
    depends = given.get("depends_on") or {}
    depends_on = dict.fromkeys(depends, "service_started") if isinstance(depends, list) else {
        str(k): str((v or {}).get("condition", "service_started")) for k, v in depends.items()}
    for other, condition in depends_on.items():
        if condition not in CONDITIONS:
            raise DualgitError(f"{at}: service {name}'s depends_on {other} has condition {condition}",
                               hint=f"use one of {', '.join(CONDITIONS)}")
    return Service(
        name=name, image=given.get("image"), build=build, env=env,
        command=_argv(given.get("command")), entrypoint=_argv(given.get("entrypoint")), ports=tuple(ports),
        volumes=volumes, binds=tuple(binds),
        memory=memory(str(mem), at) if mem is not None else None,
        cpus=cpus(float(cpu), at) if cpu is not None else None,
        health=_health(given.get("healthcheck"), at, name), depends_on=depends_on,
        user=str(given["user"]) if given.get("user") is not None else None,
        restart=_restart(given.get("restart", "no"), at, name), at=at, seed_at=at,
        **_ours(given.get("x-dualgit"), tuple(ports), at, name))


def _ours(value: Any, ports: tuple[int, ...], at: str, name: str) -> dict[str, Any]:
    """`x-dualgit: {seed: main, http: [8025]}`: the branch a new branch's volumes of this service are
    copied from, and which of its ports speak HTTP (each gets a URL)."""
    if value is None:
        return {}
    seed = value.get("seed") if isinstance(value, dict) else None
    if not isinstance(value, dict) or set(value) - {"seed", "http"} or (
            seed is not None and (not isinstance(seed, str) or not seed.strip())):
        raise DualgitError(f"{at}: service {name}'s x-dualgit must be {{seed: BRANCH, http: [PORT]}}, not {value!r}",
                           hint="write x-dualgit: {seed: main}")
    return {"seed": seed.strip() if seed else None, "http": http_ports(value.get("http", []), ports, at, name)}


def _restart(value: Any, at: str, name: str) -> str:
    policy = str(value).split(":")[0]
    if policy not in ("no", "always", "on-failure", "unless-stopped"):
        raise DualgitError(f"{at}: service {name}'s restart is {value!r}",
                           hint="use no, always, on-failure or unless-stopped")
    return policy


def _argv(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(shlex.split(value)) if isinstance(value, str) else tuple(str(v) for v in value)


def _health(value: Any, at: str, name: str) -> Health | None:
    if not isinstance(value, dict) or value.get("disable"):
        return None
    test = value.get("test")
    if isinstance(test, str):
        found: tuple[str, ...] = ("CMD-SHELL", test)
    elif isinstance(test, list) and test:
        found = tuple(str(t) for t in test)
    else:
        return None
    key = f"services.{name}.healthcheck"
    return Health(found, seconds(value.get("interval", "30s"), at, f"{key}.interval"),
                  seconds(value.get("timeout", "30s"), at, f"{key}.timeout"), int(value.get("retries", 3)),
                  seconds(value.get("start_period", 0), at, f"{key}.start_period"))
