"""Built-in plugin: a repository's `.devcontainer/devcontainer.json` (or `.devcontainer.json`) works
with no `.dual.toml`. JSON with comments and trailing commas, as that format allows. Read from it:
`image`, `containerEnv`, `remoteEnv`, `postCreateCommand` and `postStartCommand` (a string, a list or
an object of either), `forwardPorts` and `remoteUser`. `.dual.toml` wins where both speak."""

from __future__ import annotations

import json
import os
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
    return ContainerSettings(env=env, ports=ports, user=str(user) if user else None)


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
