"""Built-in plugin: an image chosen from the repository's files when neither `.dual.toml` nor
devcontainer.json names one. Asked last, so any other plugin's answer wins.

| file at the worktree's root               | image                          |
| ----------------------------------------- | ------------------------------ |
| `.nvmrc` (say `20` or `v20.11.1`)         | `node:<major>-bookworm`        |
| `package.json`                            | `node:lts-bookworm`            |
| `pyproject.toml`, `requirements.txt`, `setup.py` | `python:3-bookworm`     |
| `go.mod`                                  | `golang:bookworm`              |
| `Cargo.toml`                              | `rust:bookworm`                |
| `Gemfile`                                 | `ruby:bookworm`                |
| none of these                             | `debian:bookworm-slim`         |
"""

from __future__ import annotations

import os
import re

from dualgit.hookspecs import Context, hookimpl

FALLBACK = "debian:bookworm-slim"
TABLE = (
    (("package.json",), "node:lts-bookworm"),
    (("pyproject.toml", "requirements.txt", "setup.py"), "python:3-bookworm"),
    (("go.mod",), "golang:bookworm"),
    (("Cargo.toml",), "rust:bookworm"),
    (("Gemfile",), "ruby:bookworm"),
)


def detect(worktree: str) -> str:
    nvmrc = os.path.join(worktree, ".nvmrc")
    if os.path.isfile(nvmrc):
        with open(nvmrc, errors="replace") as f:
            match = re.match(r"\s*v?(\d+)", f.read())
        return f"node:{match[1]}-bookworm" if match else "node:lts-bookworm"
    for names, image in TABLE:
        if any(os.path.isfile(os.path.join(worktree, n)) for n in names):
            return image
    return FALLBACK


@hookimpl(trylast=True)
def dualgit_image(ctx: Context) -> str:
    return detect(ctx.worktree)
