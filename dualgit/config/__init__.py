"""`.dual.toml` at a worktree's root: read (`read_toml`, the one TOML reader), checked, defaulted;
`git dual init` writes it."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from typing import Any

from dualgit.background import user_config_file
from dualgit.config import services as _services
from dualgit.config.services import Service
from dualgit.errors import DualgitError

FILENAME = ".dual.toml"
DEFAULT_PORTS = (3000,)
KNOWN_KEYS = ("image", "build", "ports", "tcp_ports", "serve", "env", "strict", "route", "host", "env_pass",
              "env_block", "idle_after", "cpus", "memory", "services", "compose", "compose_profiles", "files",
              "remote_only", "engine")  # plugins add theirs
USER_KEYS = ("idle_after", "cpus", "memory", "max_running", "files", "engine", "engines")  # defaults, the cap, engines
DEFAULT_IDLE_WITH_SERVE = 30 * 60  # seconds: a branch with `serve` sleeps after this; one without, never
DURATION = re.compile(r"(?:(\d+)([smhd]))+")
DURATION_PART = re.compile(r"(\d+)([smhd])")
DURATION_FORMS = 'a duration such as "90s", "30m", "2h" or "1h30m", or a whole number of seconds (0: never)'
MEMORY = re.compile(r"(\d+(?:\.\d+)?)([bkmg]?)b?", re.IGNORECASE)
MEMORY_FORMS = 'a size as Docker writes it, such as "512m" or "2g" (b, k, m, g), of 6m or more'
MIN_MEMORY = 6 * 1024 * 1024  # Docker's smallest memory cap

TEMPLATE = '''\
# dualgit: every worktree of this repository gets its own container, made from this file.
# Each worktree reads the copy on its own branch, so a branch can try another image.

# The image for each worktree's container (any: dualgit's agent, a static busybox, keeps it up).
# Unset, it comes from .devcontainer/devcontainer.json, else from the repository's files
# (package.json: node, pyproject.toml: python, go.mod: golang, ...; else debian:bookworm-slim).
# image = "busybox:latest"

# HTTP ports. Every branch can bind the same port: each container has its own network. Each
# branch's port opens at http://<branch>.<repo>.localhost:<port> through dualgit's proxy, whether
# the server listens on 0.0.0.0 or, as Vite, Django and Flask do by default, on localhost inside.
ports = [3000]

# The branch's dev server, started in its container once setup is done, and again whenever the
# container starts; restarted when it exits (`git dual serve`, `git dual logs --serve`). PORT is
# the first port above, or for several servers a table: [serve] 3000 = "npm run dev".
# serve = "npm run dev"

# Caps for this branch's container, as Docker writes them; applied live by `git dual up`.
# memory = "2g"
# cpus = 1.5

# A branch untouched for this long (no request at its URLs, no exec, no file change) sleeps: its
# container stops, its memory is freed, and its next request or exec wakes it, `serve` and all.
# "90s", "30m", "2h" or seconds; 0: never. Default: "30m" with `serve`, else never.
# idle_after = "30m"

# Raw TCP ports (databases and the like): each branch gets a stable host port for each,
# `git dual urls` lists them as tcp://127.0.0.1:<port>.
tcp_ports = []

# true: a post-checkout hook that cannot bring the container up fails the git command.
strict = false

# Setup steps, run in order inside a new worktree's container, in the background:
# `git dual logs -f` follows them, and `git dual exec` waits for them.
setup = []

# Folders kept in a named volume per worktree (they survive the container being made anew).
cache_dirs = []

# On an engine on another machine (DOCKER_HOST=ssh://..., or a context), each worktree is synced
# with volumes there, both ways. What stays there, unsynced (default: node_modules, .venv,
# __pycache__, target and other such folders), and "sync" or "bind" to choose for yourself.
# remote_only = ["node_modules", "build/cache"]
# files = "sync"

# The engine this branch's container runs on: a Docker context's name (`docker context ls`), or
# "default" (DOCKER_HOST, else the current context, else this machine's). Addresses go in your own
# ~/.config/dualgit/config.toml, which can also choose per repository and branch ([[engines]]).
# engine = "devbox"

# Command names that run in the container from any shell once `git dual shell-init` is in your rc
# (on top of node, npm, python, pytest, make, curl, ...; `git dual which NAME` tells), and names
# kept on this machine. Variables set for one command (FOO=1 npm test) go in; host-only ones
# (PATH, HOME, SSH_*, TMPDIR, ...) don't: env_pass and env_block change that.
route = []
host = []

# Environment for the container and everything `git dual exec` runs in it.
[env]
# NODE_ENV = "development"

# Files git ignores, copied from the main worktree into each new one.
[shared]
files = []
'''


@dataclass(frozen=True)
class Config:
    image: str | None = None  # None: a plugin chooses (devcontainer.json, then the repository's files)
    build: dict[str, Any] | None = None  # dockerfile, context, args, target: relative to the worktree
    ports: tuple[int, ...] = DEFAULT_PORTS
    tcp_ports: tuple[int, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    serve: dict[int, str] = field(default_factory=dict)  # port -> the branch's dev server command there
    strict: bool = False
    idle_after: int | None = None  # seconds (0: never); None: the user's default, else DEFAULT_IDLE_WITH_SERVE
    cpus: float | None = None  # None: no cap (or the user's default)
    memory: int | None = None  # bytes
    source: str | None = None  # the file it came from; None when defaults
    data: dict[str, Any] = field(default_factory=dict)  # the whole file, for plugins' keys
    services: tuple[Service, ...] = ()  # `[services.NAME]`: each branch runs its own copy of each
    compose: tuple[str, ...] = ()  # compose files opted in (relative to the worktree); their services join
    files: str | None = None  # "sync" or "bind": how the container gets the worktree (None: by the engine's address)
    remote_only: tuple[str, ...] | None = None  # what stays on a synced engine's side (None: `sync.REMOTE_ONLY`)
    engine: str | None = None  # a Docker context's name, or "default" (None: the user's choice)


def load(worktree: str) -> Config:
    """The worktree's config; defaults when it has no `.dual.toml`. Keys that plugins read are known."""
    file = os.path.join(worktree, FILENAME)
    text = read_text(file)
    if text is None:
        return Config()
    from dualgit.plugins import plugins

    return parse(text, file, plugins().config_keys())


def parse(text: str, file: str = FILENAME, plugin_keys: dict[str, Any] | list[str] | tuple[str, ...] = ()) -> Config:
    """The config in `text`; `plugin_keys` are the plugins' keys, with their types where declared."""
    doc = read_toml(text, file)
    typed = plugin_keys if isinstance(plugin_keys, dict) else dict.fromkeys(plugin_keys, Any)
    known = (*KNOWN_KEYS, *typed)
    for key, wanted in typed.items():
        if key in doc:
            problem = mismatch(doc[key], wanted, key)
            if problem is not None:
                path, value, kind = problem
                raise _bad(_at(file, text, path), path, kind, value)
    for key in doc:
        if key == "max_running":
            raise DualgitError(f"{_at(file, text, key)}: `max_running` is user-wide, not a branch's",
                               hint=f"move it to {user_config_file()} (one cap for all your branches)")
        if key not in known:
            _unknown(key, known, file)
    ports = _ports(doc.get("ports", list(DEFAULT_PORTS)), _at(file, text, "ports"))
    tcp_ports = _ports(doc.get("tcp_ports", []), _at(file, text, "tcp_ports"), "tcp_ports")
    compose = doc.get("compose", [])
    if isinstance(compose, str):
        compose = [compose]
    if not isinstance(compose, list) or not all(isinstance(c, str) and c.strip() for c in compose):
        raise _bad(_at(file, text, "compose"), "compose", 'a list of compose files such as ["compose.yaml"]', compose)
    return Config(
        image=_image(doc["image"], _at(file, text, "image")) if "image" in doc else None,
        build=_build(doc["build"], _at(file, text, "build")) if "build" in doc else None,
        ports=ports,
        tcp_ports=tcp_ports,
        env=_env(doc.get("env", {}), _at(file, text, "env")),
        serve=_serve(doc.get("serve", {}), file, text, ports),
        strict=_bool(doc.get("strict", False), "strict", _at(file, text, "strict")),
        **_caps(doc, file, text),
        source=file,
        data=doc,
        services=_services.parse(doc, file, text, (*ports, *tcp_ports)),
        compose=tuple(compose),
        files=_files(doc, file, text),
        remote_only=_remote_only(doc, file, text),
        engine=_engine(doc.get("engine"), _at(file, text, "engine"), addresses=False),
    )


ENGINE_FORMS = ('"default", or a Docker context\'s name such as "devbox" (`docker context ls`)')


def _engine(value: Any, at: str, addresses: bool, key: str = "engine") -> str | None:
    """An engine's name: "default", a Docker context's name, or (`addresses`: in the user's own
    file) an address. A repository's file names no address: a container can write that file, and
    an address there would send the worktree's files wherever it says."""
    if value is None:
        return None
    forms = ENGINE_FORMS + (", or an address: ssh://[USER@]HOST, tcp://HOST:PORT, unix:///PATH" if addresses else "")
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise _bad(at, key, forms, value)
    name: str = value.strip()
    if "://" in name and not addresses:
        raise DualgitError(f"{at}: `{key}` names an address ({name}), and a repository's file may only name an "
                           "engine you named yourself", hint="make it a Docker context (`docker context create NAME "
                           f"--docker host={name}`) and write its name, or name the address in {user_config_file()}")
    if "://" in name and not name.startswith(("unix://", "tcp://", "ssh://", "https://", "http://")):
        raise _bad(at, key, forms, value)
    return name


def _files(doc: dict[str, Any], file: str, text: str) -> str | None:
    value = doc.get("files")
    if value is not None and value not in ("sync", "bind"):
        raise _bad(_at(file, text, "files"), "files", '"sync" (files kept in step with a volume on the engine) or '
                   '"bind" (the engine sees this machine\'s folders)', value)
    return value


def _remote_only(doc: dict[str, Any], file: str, text: str) -> tuple[str, ...] | None:
    value = doc.get("remote_only")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() and ".." not in v for v in value):
        raise _bad(_at(file, text, "remote_only"), "remote_only",
                   'a list of folder names or paths in the worktree, such as ["node_modules", "build/cache"]', value)
    return tuple(v.strip().strip("/") for v in value)


def _caps(doc: dict[str, Any], file: str, text: str) -> dict[str, Any]:
    """`idle_after`, `cpus` and `memory`, where set: the keys `.dual.toml` and the user's file share."""
    found: dict[str, Any] = {}
    if "idle_after" in doc:
        found["idle_after"] = duration(doc["idle_after"], _at(file, text, "idle_after"), "idle_after")
    if "cpus" in doc:
        found["cpus"] = cpus(doc["cpus"], _at(file, text, "cpus"))
    if "memory" in doc:
        found["memory"] = memory(doc["memory"], _at(file, text, "memory"))
    return found


def duration(value: Any, at: str, key: str) -> int:
    """Seconds, from "90s", "30m", "2h", "1h30m" or a whole number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, str) and DURATION.fullmatch(value.strip().lower()):
        scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        return sum(int(n) * scale[unit] for n, unit in DURATION_PART.findall(value.strip().lower()))
    raise _bad(at, key, DURATION_FORMS, value)


def memory(value: Any, at: str) -> int:
    """Bytes, from Docker's way of writing a size: "512m", "2g", "1.5g", or a number of bytes."""
    found = MEMORY.fullmatch(value.strip()) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif found:
        size = int(float(found[1]) * 1024 ** "bkmg".index((found[2] or "b").lower()))
    else:
        raise _bad(at, "memory", MEMORY_FORMS, value)
    if size < MIN_MEMORY:
        raise _bad(at, "memory", MEMORY_FORMS, value)
    return size


def cpus(value: Any, at: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1024:
        raise _bad(at, "cpus", "a number of CPUs above 0, such as 0.5 or 2", value)
    return float(value)


@dataclass(frozen=True)
class UserConfig:
    """`$XDG_CONFIG_HOME/dualgit/config.toml`: defaults for every branch's `idle_after`, `cpus` and
    `memory` (a branch's `.dual.toml` wins), and `max_running`, the user-wide cap (None: none)."""
    idle_after: int | None = None
    cpus: float | None = None
    memory: int | None = None
    max_running: int | None = None
    files: str | None = None  # "sync" or "bind" for every engine (None: by the engine's address)
    engine: str | None = None  # every branch's engine, unless a rule or its `.dual.toml` names one (None: "default")
    engines: tuple[EngineRule, ...] = ()  # `[[engines]]`: the first that matches a branch names its engine
    source: str | None = None


@dataclass(frozen=True)
class EngineRule:
    """`[[engines]]` in the user's file: branches of `repo` (its folder's name, as in its URLs; None:
    any) whose name matches the glob `branch` (None: any) run on `engine`."""
    engine: str
    repo: str | None = None
    branch: str | None = None

    def matches(self, repo: str, branch: str | None) -> bool:
        import fnmatch

        if self.repo is not None and self.repo != repo:
            return False
        return self.branch is None or (branch is not None and fnmatch.fnmatchcase(branch, self.branch))


def load_user() -> UserConfig:
    file = user_config_file()
    text = read_text(file)
    return UserConfig() if text is None else parse_user(text, file)


def read_text(file: str) -> str | None:
    """The file's text; None when there is none."""
    try:
        with open(file, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DualgitError(f"cannot read {file}: {exc}")


def parse_user(text: str, file: str) -> UserConfig:
    doc = read_toml(text, file)
    for key in doc:
        if key not in USER_KEYS:
            _unknown(key, USER_KEYS, file)
    cap = doc.get("max_running")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
        raise _bad(_at(file, text, "max_running"), "max_running", "a whole number of branches (0: no cap)", cap)
    return UserConfig(**_caps(doc, file, text), max_running=cap or None, files=_files(doc, file, text),
                      engine=_engine(doc.get("engine"), _at(file, text, "engine"), addresses=True),
                      engines=_rules(doc.get("engines", []), file, text), source=file)


RULE_FORMS = ('a list of tables such as [[engines]] repo = "shop" branch = "feat/heavy-*" engine = "devbox" '
              '(repo and branch optional)')


def _rules(value: Any, file: str, text: str) -> tuple[EngineRule, ...]:
    at = _at(file, text, "engines")
    if not isinstance(value, list) or not all(isinstance(rule, dict) for rule in value):
        raise _bad(at, "engines", RULE_FORMS, value)
    rules = []
    for rule in value:
        extra = set(rule) - {"repo", "branch", "engine"}
        if extra or "engine" not in rule or not all(isinstance(rule.get(k, ""), str) for k in ("repo", "branch")):
            raise _bad(at, "engines", RULE_FORMS, rule)
        engine = _engine(rule["engine"], at, addresses=True, key="engines.engine")
        assert engine is not None
        rules.append(EngineRule(engine, rule.get("repo") or None, rule.get("branch") or None))
    return tuple(rules)


@dataclass(frozen=True)
class Limits:
    """What a branch gets once its `.dual.toml` and the user's defaults are merged."""
    idle_after: int  # seconds; 0: never sleeps
    cpus: float | None
    memory: int | None


def limits(config: Config, user: UserConfig) -> Limits:
    idle = config.idle_after if config.idle_after is not None else user.idle_after
    if idle is None:
        idle = DEFAULT_IDLE_WITH_SERVE if config.serve else 0
    return Limits(idle, config.cpus if config.cpus is not None else user.cpus,
                  config.memory if config.memory is not None else user.memory)


def _unknown(key: str, known: tuple[str, ...], file: str) -> None:
    """A warning, not an error: a key from a newer dualgit, or a plugin not installed here."""
    import difflib

    close = difflib.get_close_matches(key, known, n=1)
    guess = f" (did you mean `{close[0]}`?)" if close else f" (known: {', '.join(known)})"
    print(f"dualgit: warning: {file}: unknown key `{key}`{guess}", file=sys.stderr)


def read_toml(text: str, file: str = FILENAME) -> dict[str, Any]:
    """The TOML in `text`, or an error that says FILE:LINE:COLUMN and what is wrong there."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, col, reason = _where(exc, text)
        raise DualgitError(
            f"{file}:{line}:{col}: {reason}",
            hint=f"fix the TOML at line {line}, column {col} (`git dual init --force` writes a fresh template)",
        )


def _where(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, int, str]:
    """1-based line and column, and the reason. A file that runs out mid-value is reported at its
    end, with the likely cause."""
    found = re.search(r"^(.*) \(at line (\d+), column (\d+)\)$", str(exc))
    lines = text.split("\n")
    if found:
        line, col, reason = int(found[2]), int(found[3]), found[1]
    else:
        line = len(text.rstrip("\n").split("\n"))
        col, reason = len(lines[line - 1]) + 1, str(exc).removesuffix(" (at end of document)")
    if "\n".join([*lines[:line - 1], lines[line - 1][:col - 1]]).rstrip() == text.rstrip() and reason != \
            "Cannot overwrite a value":
        reason = "unexpected end of file (is a bracket or quote left open?)"
    return line, col, reason


def _bad(at: str, key: str, wanted: str, got: Any) -> DualgitError:
    """`at` is FILE:LINE:COLUMN of the key's value (or FILE alone, for a key the file lacks)."""
    return DualgitError(f"{at}: `{key}` must be {wanted}, not {got!r}", hint=f"edit `{key}` in {at.split(':')[0]}")


def _at(file: str, text: str, dotted: str) -> str:
    """FILE:LINE:COLUMN of a key's value, found by reading the lines: `key = ...` at the top, in
    its `[table]`, or as `table.key = ...`; FILE alone when the file does not set it."""
    *tables, key = dotted.split(".")
    table = ".".join(tables)
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
            if current == dotted:
                return f"{file}:{number}:{line.index('[') + 1}"
            continue
        name, eq, _ = stripped.partition("=")
        name = name.strip().strip('"')
        if eq and ((current == table and name == key) or (not current and name in (dotted, table))):
            after = line.index("=") + 1
            return f"{file}:{number}:{after + len(line[after:]) - len(line[after:].lstrip()) + 1}"
    return file


def mismatch(value: Any, wanted: Any, path: str) -> tuple[str, Any, str] | None:
    """Pure: None when `value` has the type `wanted` (a type such as `list[str]` or `str | int`, or a
    dict of a table's keys' types), else (the dotted key at fault, its value, what it must be)."""
    import types
    import typing

    if wanted is Any:
        return None
    if isinstance(wanted, dict):
        if not isinstance(value, dict):
            return path, value, "a table" + (f" with {', '.join(wanted)}" if wanted else "")
        for key, inner in wanted.items():
            if key in value:
                found = mismatch(value[key], inner, f"{path}.{key}")
                if found is not None:
                    return found
        return None
    origin, args = typing.get_origin(wanted), typing.get_args(wanted)
    if origin in (types.UnionType, typing.Union):
        if all(mismatch(value, arg, path) is not None for arg in args):
            return path, value, " or ".join(_kind(arg) for arg in args)
        return None
    if origin is list:
        if not isinstance(value, list) or (args and any(mismatch(v, args[0], path) for v in value)):
            return path, value, _kind(wanted)
        return None
    if origin is dict:
        if not isinstance(value, dict) or (len(args) == 2 and any(mismatch(v, args[1], path) for v in value.values())):
            return path, value, _kind(wanted)
        return None
    if wanted in (int, float) and isinstance(value, bool):
        return path, value, _kind(wanted)
    return None if isinstance(value, wanted) else (path, value, _kind(wanted))


def _kind(wanted: Any) -> str:
    """How a type reads in an error: `list[str]` is "a list of strings"."""
    import typing

    names = {str: "a string", int: "a whole number", float: "a number", bool: "true or false", dict: "a table",
             list: "a list", Any: "anything"}
    if wanted in names:
        return names[wanted]
    origin, args = typing.get_origin(wanted), typing.get_args(wanted)
    if origin in (list, dict) and args:
        inner = _kind(args[-1])
        what = "a list" if origin is list else "a table"
        if inner == "anything":
            return what
        if " or " in inner or not inner.startswith("a "):
            return f"{what}, each {inner}"
        return f"{what} of {inner[2:]}s"
    if isinstance(wanted, dict):
        return "a table"
    return " or ".join(_kind(a) for a in args) if args else str(wanted)


def _image(value: Any, file: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(file, "image", 'an image name such as "busybox:latest"', value)
    return value.strip()


BUILD_FORMS = ('a Dockerfile\'s path ("Dockerfile"), or a table: { dockerfile = "Dockerfile", context = ".", '
               'args = { K = "v" }, target = "dev" }')


def _build(value: Any, file: str) -> dict[str, Any]:
    """`build`: a Dockerfile's path, or a table of dockerfile, context, args and target."""
    if isinstance(value, str) and value.strip():
        return {"dockerfile": value.strip(), "context": ".", "args": {}, "target": None}
    if not isinstance(value, dict) or set(value) - {"dockerfile", "context", "args", "target"}:
        raise _bad(file, "build", BUILD_FORMS, value)
    args = value.get("args", {})
    parts = (value.get("dockerfile", "Dockerfile"), value.get("context", "."), value.get("target", ""))
    if not all(isinstance(p, str) for p in parts) or not isinstance(args, dict) \
            or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in args.values()):
        raise _bad(file, "build", BUILD_FORMS, value)
    return {"dockerfile": parts[0], "context": parts[1], "args": {str(k): str(v) for k, v in args.items()},
            "target": parts[2] or None}


def _ports(value: Any, file: str, key: str = "ports") -> tuple[int, ...]:
    if not isinstance(value, list):
        raise _bad(file, key, "a list of port numbers such as [3000, 5173]", value)
    ports = []
    for item in value:
        port = int(item) if isinstance(item, str) and item.isdigit() else item
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise _bad(file, key, "a list of port numbers from 1 to 65535", item)
        if port not in ports:
            ports.append(port)
    return tuple(ports)


def _serve(value: Any, file: str, text: str, ports: tuple[int, ...]) -> dict[int, str]:
    """`serve`: one command (for the first declared port), or a table of declared ports to commands."""
    if isinstance(value, str):
        if not value.strip():
            raise _bad(_at(file, text, "serve"), "serve", 'a command such as "npm run dev"', value)
        if not ports:
            raise _bad(_at(file, text, "ports"), "ports", "a list with the port `serve` listens on", [])
        return {ports[0]: value}
    if not isinstance(value, dict):
        raise _bad(_at(file, text, "serve"), "serve", 'a command such as "npm run dev", or a table of ports '
                   'to commands such as [serve] 3000 = "npm run dev"', value)
    found = {}
    for key, command in value.items():
        at = _at(file, text, f"serve.{key}")
        if not (isinstance(key, str) and key.isdigit() and int(key) in ports):
            raise _bad(at, f"serve.{key}", f"a declared port (ports = {list(ports)}); "
                       f"`git dual config add ports {key}` adds it", key)
        if not isinstance(command, str) or not command.strip():
            raise _bad(at, f"serve.{key}", 'a command such as "npm run dev"', command)
        found[int(key)] = command
    return found


def _env(value: Any, file: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _bad(file, "env", 'a table such as [env] NODE_ENV = "development"', value)
    env = {}
    for key, item in value.items():
        if isinstance(item, (dict, list)) or "=" in key or not key:
            raise _bad(file, f"env.{key}", "a string, number or boolean", item)
        env[key] = str(item).lower() if isinstance(item, bool) else str(item)
    return env


def _bool(value: Any, key: str, file: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(file, key, "true or false", value)
    return value


def write_template(worktree: str, force: bool = False) -> str | None:
    """Write the commented template; None when a .dual.toml is there already (kept unless `force`):
    a repository's committed one is the team's, not to be replaced by running `git dual init`."""
    file = os.path.join(worktree, FILENAME)
    if os.path.exists(file) and not force:
        return None
    with open(file, "w", encoding="utf-8") as f:
        f.write(TEMPLATE)
    return file
