"""Built-in plugin: a repository's `.devcontainer/devcontainer.json` (or `.devcontainer.json`) works
with no `.dual.toml`. JSON with comments and trailing commas, as that format allows. Read from it:
`image`, `containerEnv`, `remoteEnv`, `postCreateCommand` and `postStartCommand` (a string, a list or
an object of either), `forwardPorts` and `remoteUser`; and what widens the container's reach, which
dualgit applies once the user allowed it (`git dual allow`): `privileged`, `capAdd`, `securityOpt`,
`mounts` (binds) and `runArgs`' `--privileged`, `--cap-add`, `--security-opt`, `--device`,
`--network host`, `--pid host`, `-v`/`--volume` and `--mount`. `initializeCommand` never runs: it
would run on the host, and the container can rewrite it. `.dual.toml` wins where both speak."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from dualgit.errors import DualgitError
from dualgit.hookspecs import ContainerSettings, Context, Step, hookimpl

PLACES = (".devcontainer/devcontainer.json", ".devcontainer.json")


def find(worktree: str) -> str | None:
    for place in PLACES:
        path = os.path.join(worktree, place)
        if os.path.isfile(path):
            return path
    return None


def strip_jsonc(text: str) -> str:
    """Comments and trailing commas blanked out, every other character where it was, so that the
    JSON parser's line and column point into the original file."""
    out = list(text)
    i, n = 0, len(text)
    last_comma = -1
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            last_comma = -1
            continue
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for j in range(i, end):
                if out[j] != "\n":
                    out[j] = " "
            i = end
            continue
        if c == ",":
            last_comma = i
        elif c in "}]" and last_comma >= 0:
            out[last_comma] = " "
            last_comma = -1
        elif not c.isspace():
            last_comma = -1
        i += 1
    return "".join(out)


def load(worktree: str) -> dict[str, Any]:
    path = find(worktree)
    if path is None:
        return {}
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(strip_jsonc(text))
    except json.JSONDecodeError as exc:
        raise DualgitError(f"{path}:{exc.lineno}:{exc.colno}: {exc.msg}",
                           hint=f"fix the JSON at line {exc.lineno}, column {exc.colno}")
    if not isinstance(data, dict):
        raise DualgitError(f"{path}: expected a JSON object at the top", hint="see https://containers.dev")
    return data


@hookimpl
def dualgit_config_keys() -> list[str]:
    return []


@hookimpl(tryfirst=True)
def dualgit_image(ctx: Context) -> str | None:
    image = load(ctx.worktree).get("image")
    return image if isinstance(image, str) and image else None


LOCAL = re.compile(r"\$\{(localEnv:[A-Za-z_][A-Za-z0-9_]*(?::[^}]*)?|localWorkspaceFolder|localWorkspaceFolderBasename"
                   r"|containerWorkspaceFolder|containerWorkspaceFolderBasename)\}")


def expand(value: str, worktree: str) -> str:
    """The host-side variables of the spec (`${localEnv:VAR[:default]}`, the workspace folders and
    their basenames); the worktree is mounted at its own path, so both folders are the same."""
    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name.startswith("localEnv:"):
            var, _, default = name[len("localEnv:"):].partition(":")
            return os.environ.get(var, default)
        return os.path.basename(worktree) if name.endswith("Basename") else worktree
    return LOCAL.sub(one, value)


def _mount(spec: Any, worktree: str) -> tuple[str, str, bool] | str:
    """A `mounts` entry (a `--mount` string or an object) as (source, target, read-only) for a bind;
    else why it is not applied."""
    if isinstance(spec, str):
        fields: dict[str, str] = {}
        for part in spec.split(","):
            key, _, value = part.partition("=")
            fields[key.strip().lower()] = value.strip()
        if "src" in fields:
            fields["source"] = fields["src"]
        if "dst" in fields or "destination" in fields:
            fields["target"] = fields.get("dst") or fields["destination"]
        read_only = any(fields.get(key) in ("", "true", "1") for key in ("readonly", "ro") if key in fields)
    elif isinstance(spec, dict):
        fields = {str(k).lower(): str(v) for k, v in spec.items()}
        read_only = str(spec.get("readonly", spec.get("readOnly", False))).lower() == "true"
    else:
        return "a mount is a string or an object"
    kind = fields.get("type", "volume")
    if kind != "bind":
        return f"a mount of type {kind} (named volumes are shared by every branch: `cache_dirs` keeps a folder per branch)"
    if not fields.get("source") or not fields.get("target"):
        return "a bind mount needs source and target"
    return os.path.join(worktree, expand(fields["source"], worktree)), expand(fields["target"], worktree), read_only


def run_args(args: list[str], worktree: str, settings: ContainerSettings) -> None:
    """The subset of `docker run` options that `runArgs` may carry, into `settings`."""
    valued = {"--cap-add", "--security-opt", "--device", "--network", "--net", "--pid", "-v", "--volume", "--mount"}
    i = 0
    while i < len(args):
        arg = str(args[i])
        name, eq, value = arg.partition("=")
        if name in valued and not eq:
            if i + 1 >= len(args):
                settings.not_honoured.append((f"runArgs {arg}", "it has no value"))
                break
            value = str(args[i + 1])
            i += 1
        i += 1
        if name == "--privileged":
            settings.privileged = True
        elif name == "--cap-add":
            settings.cap_add.append(value)
        elif name == "--security-opt":
            settings.security_opt.append(value)
        elif name == "--device":
            settings.devices.append(expand(value, worktree))
        elif name in ("--network", "--net", "--pid") and value == "host":
            settings.network_mode = "host" if name != "--pid" else settings.network_mode
            settings.pid_mode = "host" if name == "--pid" else settings.pid_mode
        elif name in ("-v", "--volume"):
            parts = expand(value, worktree).split(":")
            if len(parts) >= 2 and parts[0].startswith(("/", ".", "~")):
                settings.binds.append((os.path.join(worktree, os.path.expanduser(parts[0])), parts[1],
                                       len(parts) > 2 and "ro" in parts[2].split(",")))
            else:
                settings.not_honoured.append((f"runArgs {arg}", "a named volume is shared by every branch"))
        elif name == "--mount":
            found = _mount(value, worktree)
            if isinstance(found, str):
                settings.not_honoured.append((f"runArgs {arg}", found))
            else:
                settings.binds.append(found)
        elif name == "--init":
            pass  # dualgit's containers always run an init
        else:
            settings.not_honoured.append((f"runArgs {arg}", "not in the subset dualgit applies (see the README)"))


@hookimpl
def dualgit_container_settings(ctx: Context) -> ContainerSettings | None:
    data = load(ctx.worktree)
    if not data:
        return None
    env = {}
    for key in ("containerEnv", "remoteEnv"):
        for name, value in (data.get(key) or {}).items():
            if value is not None and "${" not in str(value):  # ${localEnv:..} and friends are not expanded
                env[str(name)] = str(value)
    ports = [p for p in data.get("forwardPorts") or [] if isinstance(p, int)]
    user = data.get("remoteUser") or data.get("containerUser")
    found = ContainerSettings(env=env, ports=ports, user=str(user) if user else None)
    found.privileged = data.get("privileged") is True
    found.cap_add = [str(c) for c in data.get("capAdd") or [] if isinstance(c, str)]
    found.security_opt = [str(o) for o in data.get("securityOpt") or [] if isinstance(o, str)]
    for spec in data.get("mounts") or []:
        mount = _mount(spec, ctx.worktree)
        if isinstance(mount, str):
            found.not_honoured.append(("mounts", mount))
        else:
            found.binds.append(mount)
    args = data.get("runArgs") or []
    if isinstance(args, list):
        run_args([str(a) for a in args], ctx.worktree, found)
    if data.get("initializeCommand"):
        found.not_honoured.append(("initializeCommand", "it would run on the host, and the container can rewrite it"))
    return found


def commands(value: Any) -> list[tuple[str, str | list[str]]]:
    """A lifecycle command as (label, command) pairs: a string runs in a shell, a list as argv, an
    object's values one after another."""
    if isinstance(value, str) and value.strip():
        return [("", value)]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [("", value)]
    if isinstance(value, dict):
        return [(f" {k}", c) for k, v in value.items() for _, c in commands(v)]
    return []


@hookimpl
def dualgit_setup_steps(ctx: Context) -> list[Step]:
    data = load(ctx.worktree)
    steps = []
    for order, key in ((300, "postCreateCommand"), (400, "postStartCommand")):
        for i, (label, command) in enumerate(commands(data.get(key))):
            steps.append(Step(name=f"devcontainer {key}{label}", order=order + i, command=command))
    return steps
