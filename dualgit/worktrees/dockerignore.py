"""A build context's files as `.dockerignore` leaves them, with the rules docker-py and the docker CLI
follow: patterns cleaned of `.` and `..`, matched with `*`, `?`, `[...]` and `**` against a path or
any of its parent folders, the last matching pattern deciding, `!` taking a path back; the
Dockerfile and `.dockerignore` always go. The standard library alone: the hook hashes a build's
inputs on every `git worktree add`, and docker-py's import costs a fifth of a second."""

from __future__ import annotations

import os
import re
from functools import lru_cache


class Pattern:
    __slots__ = ("exclusion", "dirs", "cleaned")

    def __init__(self, text: str) -> None:
        self.exclusion = text.startswith("!")
        parts: list[str] = []
        for part in (text[1:] if self.exclusion else text).strip().replace("\\", "/").split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        self.dirs = parts
        self.cleaned = "/".join(parts)

    def match(self, path: str) -> bool:
        return _regex(self.cleaned).fullmatch(path) is not None


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1: end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def patterns_of(context: str) -> list[str]:
    try:
        with open(os.path.join(context, ".dockerignore")) as f:
            return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    except OSError:
        return []


def files(context: str, dockerfile: str, extra: list[str] = []) -> list[str]:  # noqa: B006 - never changed
    """Every path (files and folders) of `context` that goes to the engine, relative to it, sorted.
    `dockerfile`: its path relative to the context; `extra`: patterns of the caller's own, after
    the file's."""
    rules = [p for p in (Pattern(t) for t in [*patterns_of(context), *extra, f"!{dockerfile}", "!.dockerignore"])
             if p.dirs]

    def ignored(path: str) -> bool:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        parent_dirs = parent.split("/") if parent else []
        found = False
        for rule in rules:
            hit = rule.match(path)
            if not hit and parent and len(rule.dirs) <= len(parent_dirs):
                hit = rule.match("/".join(parent_dirs[: len(rule.dirs)]))
            if hit:
                found = not rule.exclusion
        return found

    out: list[str] = []

    def walk(folder: str) -> None:
        for name in sorted(os.listdir(os.path.join(context, folder) if folder else context)):
            path = f"{folder}/{name}" if folder else name
            skip = ignored(path)
            if not skip:
                out.append(path)
            full = os.path.join(context, path)
            if not os.path.isdir(full) or os.path.islink(full):
                continue
            if skip and not any(r.exclusion and r.cleaned.startswith(path) for r in rules):
                continue
            walk(path)

    walk("")
    return sorted(out)
