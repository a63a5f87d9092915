"""Built-in plugin: a repository's devcontainer.json works with no `.dual.toml`: found where the spec
puts it (`.devcontainer/devcontainer.json`, `.devcontainer.json`, `.devcontainer/NAME/devcontainer.json`;
of several, `devcontainer = "NAME"` in `.dual.toml` picks one). JSON with comments and trailing
commas, as that format allows. Read from it: `image`, or `build` / `dockerFile` (which dualgit
builds; compose is refused in one line, never guessed around), `containerEnv`, `remoteEnv`, the
lifecycle commands made at creation in the spec's order (`onCreateCommand`, `updateContentCommand`,
`postCreateCommand`, then `postStartCommand`; a string, a list or an object of either), with the
workspace folder variables expanded, `forwardPorts` and `remoteUser`; keys it does not honour are
named with why (`NOT_YET`); and what widens the container's reach, which dualgit applies once the
user allowed it (`git dual allow`): `privileged`, `capAdd`, `securityOpt`, `mounts` (binds) and
`runArgs`' `--privileged`, `--cap-add`, `--security-opt`, `--device`, `--network host`, `--pid
host`, `-v`/`--volume` and `--mount`. `initializeCommand` never runs: it would run on the host, and
the container can rewrite it. `.dual.toml` wins where both speak."""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any

from dualgit.errors import DualgitError
from dualgit.hookspecs import ContainerSettings, Context, Environment, Step, hookimpl

PLACES = (".devcontainer/devcontainer.json", ".devcontainer.json")  # and .devcontainer/NAME/devcontainer.json
CHOICE = "devcontainer"  # .dual.toml's key that picks one of several


def candidates(worktree: str) -> list[str]:
    """Every devcontainer.json where the spec puts one, relative to the worktree."""
    found = [place for place in PLACES if os.path.isfile(os.path.join(worktree, place))]
    folder = os.path.join(worktree, ".devcontainer")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        names = []
    found += [f".devcontainer/{n}/devcontainer.json" for n in names
              if os.path.isfile(os.path.join(folder, n, "devcontainer.json"))]
    return found


def find(worktree: str, choice: str | None = None) -> str | None:
    """The devcontainer.json this worktree uses: the only one, or the one `choice` names (a folder
    under .devcontainer, or a path); of several with no choice, an error that lists them."""
    found = candidates(worktree)
    if choice:
        wanted = [p for p in found if p in (choice, f".devcontainer/{choice}/devcontainer.json")
                  or os.path.dirname(p) == choice.rstrip("/")]
        if not wanted:
            raise DualgitError(f"devcontainer = {choice!r} in .dual.toml names no devcontainer.json here",
                               hint="found: " + (", ".join(found) or "none"))
        return os.path.join(worktree, wanted[0])
    if len(found) > 1:
        names = [os.path.basename(os.path.dirname(p)) if p.count("/") == 2 else p for p in found]
        raise DualgitError(f"{len(found)} devcontainer.json files here: {', '.join(found)}",
                           hint=f'pick one in .dual.toml: `git dual config set devcontainer {names[-1]}`')
    return os.path.join(worktree, found[0]) if found else None


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


def load(worktree: str, choice: str | None = None) -> dict[str, Any]:
    """The devcontainer.json this worktree uses, parsed (to be read, not changed): one parse per
    version of the file, though each of the plugin's hooks asks for it."""
    path = find(worktree, choice)
    if path is None:
        return {}
    stat = os.stat(path)
    return _parsed(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _parsed(path: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
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
def dualgit_config_keys() -> dict[str, Any]:
    return {CHOICE: str}


def of(ctx: Context) -> dict[str, Any]:
    choice = ctx.config.get(CHOICE)
    return load(ctx.worktree, choice if isinstance(choice, str) else None)


@hookimpl
def dualgit_environment(ctx: Context) -> Environment | None:
    choice = ctx.config.get(CHOICE)
    path = find(ctx.worktree, choice if isinstance(choice, str) else None)
    if path is None:
        return None
    data = of(ctx)
    here = os.path.dirname(path)

    def rel(value: str) -> str:  # a path the spec takes relative to devcontainer.json, made relative to the worktree
        return os.path.relpath(os.path.normpath(os.path.join(here, value)), ctx.worktree)

    found = Environment(os.path.relpath(path, ctx.worktree))
    given = data.get("build")
    build: dict[str, Any] = given if isinstance(given, dict) else {}
    dockerfile = build.get("dockerfile") or data.get("dockerFile")
    if isinstance(dockerfile, str):
        given_args = build.get("args")
        args: dict[str, Any] = given_args if isinstance(given_args, dict) else {}
        found.build = {"dockerfile": rel(dockerfile), "context": rel(str(build.get("context") or data.get("context") or ".")),
                       "args": {str(k): expand_inside(str(v), ctx.worktree)[0] for k, v in args.items()},
                       "target": build.get("target") if isinstance(build.get("target"), str) else None}
    files = data.get("dockerComposeFile")
    if files:
        listed = [files] if isinstance(files, str) else [str(f) for f in files if isinstance(f, str)]
        services = data.get("runServices")
        found.compose = {"files": [rel(f) for f in listed], "service": data.get("service"),
                         "run_services": services if isinstance(services, list) else None}
    first = data.get("overrideFeatureInstallOrder")
    found.feature_order = [str(f) for f in first] if isinstance(first, list) else []
    user = data.get("remoteUser") or data.get("containerUser")
    found.user = str(user) if user else None
    features = data.get("features")
    if isinstance(features, dict):
        found.features = [{"id": str(k), "options": v if isinstance(v, dict) else ({"version": v} if v not in (True, None)
                                                                                     else {})}
                          for k, v in features.items()]
    return found


@hookimpl(tryfirst=True)
def dualgit_image(ctx: Context) -> str | None:
    data = of(ctx)
    image = data.get("image")
    if isinstance(image, str) and image:
        return image
    if ctx.config.get("image"):
        return None  # .dual.toml names it: no guess, and nothing to refuse
    return None  # a build (`build`, `dockerFile`) is dualgit's to make, from `dualgit_environment`


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


WORKSPACE = re.compile(r"\$\{(localWorkspaceFolder|localWorkspaceFolderBasename|containerWorkspaceFolder"
                       r"|containerWorkspaceFolderBasename|devcontainerId)\}")
LEFT = re.compile(r"\$\{(?:localEnv|containerEnv):[^}]*\}")  # the spec's, unexpanded; any other ${..} is the shell's
HOST_VAR = re.compile(r"\$\{localEnv:([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


CONTAINER_VAR = re.compile(r"\$\{containerEnv:([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def _parts(command: str | list[str] | None) -> list[str]:
    return [command] if isinstance(command, str) else list(command or [])


def command_inside(value: str, ctx: Context, shell: bool) -> tuple[str, list[str]]:
    """A lifecycle command's text: as `expand_inside`, and in a shell string `${containerEnv:VAR}`
    becomes the shell's `${VAR}` (`${VAR:-default}`), which the container's environment holds."""
    done, _ = expand_inside(value, ctx.worktree, ctx.container)
    if shell:
        done = CONTAINER_VAR.sub(lambda m: "${%s:-%s}" % (m[1], m[2]) if m[2] is not None else "${%s}" % m[1], done)
    return done, LEFT.findall(done)


def devcontainer_id(container: str) -> str:
    """`${devcontainerId}`: stable for a worktree, the same over rebuilds, in the spec's form (52
    characters of base32)."""
    import base64
    import hashlib

    return base64.b32encode(hashlib.sha256(container.encode()).digest()).decode().lower()[:52]


def expand_inside(value: str, worktree: str, container: str = "") -> tuple[str, list[str]]:
    """A value that goes into the container (an env value, a command), with the workspace folders
    and `${devcontainerId}` expanded, and the variables left in it. `${localEnv:..}` is not among
    the expanded: the file is one the container can write, so it could ask for any of the host's
    variables; env values get them behind `git dual allow` (`env_from_host`)."""
    def one(m: re.Match[str]) -> str:
        if m[1] == "devcontainerId":
            return devcontainer_id(container)
        return os.path.basename(worktree) if m[1].endswith("Basename") else worktree
    done = WORKSPACE.sub(one, value)
    return done, LEFT.findall(done)


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
    data = of(ctx)
    if not data:
        return None
    env: dict[str, str] = {}
    from_host: dict[str, list[str]] = {}
    left_out: list[tuple[str, str]] = []
    for key in ("containerEnv", "remoteEnv"):
        for name, value in (data.get(key) or {}).items():
            if value is None:
                continue
            host_vars = [m[1] for m in HOST_VAR.finditer(str(value))]
            done, left = expand_inside(expand(str(value), ctx.worktree), ctx.worktree, ctx.container)
            left = [v for v in left if not v.startswith("${containerEnv:")]  # the image's: resolved by dualgit's plan
            if left:
                left_out.append((f"{key}.{name}", f"{', '.join(left)} is not a variable dualgit knows"))
                continue
            env[str(name)] = done
            if host_vars:
                from_host[str(name)] = host_vars
    app_port = data.get("appPort")
    ports = [p for p in [*(data.get("forwardPorts") or []), *(app_port if isinstance(app_port, list) else [app_port])]
             if isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536]
    left_out += [("forwardPorts", f"{p!r}: a service's ports are those its compose file lists (`git dual urls`)")
                 for p in data.get("forwardPorts") or [] if not isinstance(p, int)]
    user = data.get("remoteUser") or data.get("containerUser")
    found = ContainerSettings(env=env, ports=ports, user=str(user) if user else None, env_from_host=from_host)
    found.remap_user = data.get("updateRemoteUserUID") is not False
    found.init = data.get("init") is not False
    found.image_command = data.get("overrideCommand") is False
    attributes = data.get("portsAttributes")
    if isinstance(attributes, dict):
        found.port_labels = {int(port): str(spec["label"]) for port, spec in attributes.items()
                             if str(port).isdigit() and isinstance(spec, dict) and isinstance(spec.get("label"), str)}
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
    for _order, key, _when in LIFECYCLE:
        command = commands(data.get(key))
        left = [v for c in _parts(command) for v in command_inside(c, ctx, isinstance(command, str))[1]]
        if left:
            left_out.append((key, f"skipped: {', '.join(left)} is not expanded yet ({WHY_LEFT})"))
    workspace = _workspace(data, ctx.worktree)
    if isinstance(workspace, tuple):
        left_out.append(workspace)
    else:
        found.workspace = workspace
    found.not_honoured.extend(left_out)
    found.not_honoured.extend((key, NOT_YET[key]) for key in data if key in NOT_YET)
    build = data.get("build")
    found.not_honoured.extend((f"build.{key}", "the engine's builder API takes no such setting") for key in
                              ("options", "cacheFrom") if isinstance(build, dict) and build.get(key))
    if data.get("containerUser") and data.get("remoteUser") and data["containerUser"] != data["remoteUser"]:
        found.not_honoured.append(("containerUser", "the container and exec both run as remoteUser"))
    return found


WHY_LEFT = ("${localEnv:..} in a command would copy the host's variables in on the word of a file the container can "
            "write (in containerEnv and remoteEnv it does, once `git dual allow` says yes)")
# The spec's order and times: at creation (the setup runner), on every start (the agent), on attach (`shell`).
LIFECYCLE = ((100, "onCreateCommand", "create"), (200, "updateContentCommand", "create"),
             (300, "postCreateCommand", "create"), (400, "postStartCommand", "start"),
             (500, "postAttachCommand", "attach"))
# Keys read and not (yet) honoured, each with why; editor-only ones (customizations, hostRequirements,
# waitFor, ...) stay quiet.
NOT_YET = {
    "otherPortsAttributes": "only portsAttributes' labels are shown (by `git dual urls`)",
    "shutdownAction": "dualgit's sleep and down stop containers",
    "userEnvProbe": "variables come from containerEnv and remoteEnv only",
}


def _workspace(data: dict[str, Any], worktree: str) -> str | None | tuple[str, str]:
    """Where the project expects its worktree inside: workspaceMount's target (its source must be
    the worktree), else workspaceFolder; or (key, why) when it can't be."""
    folder, key = None, "workspaceFolder"
    mount = data.get("workspaceMount")
    if isinstance(mount, str) and mount:
        fields = dict(part.split("=", 1) for part in mount.split(",") if "=" in part)
        source = expand_inside(fields.get("source", fields.get("src", "")), worktree)[0]
        if not source or os.path.realpath(source) != os.path.realpath(worktree) or fields.get("type", "bind") != "bind":
            return ("workspaceMount", "only a bind mount of the worktree itself is honoured (its source must be "
                    "${localWorkspaceFolder})")
        folder, key = fields.get("target") or fields.get("dst") or fields.get("destination"), "workspaceMount"
    if folder is None and isinstance(data.get("workspaceFolder"), str):
        folder = data["workspaceFolder"]
    if not folder:
        return None
    done, left = expand_inside(folder, worktree)
    normal = os.path.normpath(done)
    if left or not os.path.isabs(done) or normal == "/" or normal.split("/")[1] in ("proc", "sys", "dev", ".dualgit"):
        return (key, f"{done!r} can't be where the worktree goes: give an absolute folder such as /workspaces/app")
    return normal


def commands(value: Any) -> str | list[str] | None:
    """A lifecycle command as one step's command: a string runs in a shell, a list as argv, and an
    object's entries (each a string or a list) in parallel, as the spec says, the step failing when
    any of them fails."""
    import shlex

    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    if isinstance(value, dict):
        entries = [(str(k), commands(v)) for k, v in value.items()]
        entries = [(k, c) for k, c in entries if c]
        if not entries:
            return None
        lines = [f"{shlex.join(['sh', '-c', c]) if isinstance(c, str) else shlex.join(c or [])} & p{i}=$!"
                 for i, (_k, c) in enumerate(entries)]
        lines.append("f=0")
        lines += [f"wait $p{i} || {{ echo {shlex.quote(k)} failed; f=1; }}" for i, (k, _c) in enumerate(entries)]
        return "\n".join([*lines, "exit $f"])
    return None


@hookimpl
def dualgit_setup_steps(ctx: Context) -> list[Step]:
    data = of(ctx)
    steps = []
    for order, key, when in LIFECYCLE:
        command = commands(data.get(key))
        if command is None:
            continue
        parts = [command_inside(c, ctx, isinstance(command, str)) for c in _parts(command)]
        if any(left for _, left in parts):
            continue  # named by not_honoured (the settings hook): a shell would fail on ${...}
        done = parts[0][0] if isinstance(command, str) else [p for p, _ in parts]
        steps.append(Step(name=f"devcontainer {key}", order=order, command=done, when=when))
    return steps
