"""Names derived from paths and branches: container names, DNS-safe slugs. Pure functions.

Container names derive from the worktree's absolute path alone, so `git dual exec` finds its
container without asking the engine anything first.
"""

from __future__ import annotations

import os
import zlib

NAME_PREFIX = "dual"
MAX_NAME = 63


def short_hash(text: str, length: int = 8) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:length]


def path_hash(path: str) -> str:
    """8 hex digits that tell one worktree path from another. CRC-32 is enough: it only has to
    separate the worktrees of one machine, not resist anyone."""
    return "%08x" % zlib.crc32(path.encode("utf-8", "surrogateescape"))


def slug(text: str) -> str:
    """Lowercase ASCII; accents are dropped, and each run of any other character becomes `-`."""
    if not text.isascii():
        import unicodedata

        text = unicodedata.normalize("NFKD", text)
    out: list[str] = []
    for char in text.encode("ascii", "ignore").decode().lower():
        if char.isalnum():  # ASCII here: a-z and 0-9
            out.append(char)
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")


def dns_label(text: str, taken: bool = False, limit: int = MAX_NAME, unique: str | None = None) -> str:
    """`slug(text)` when it fits one DNS label; with a short hash added when it was truncated, came
    out empty, or collides with another's (`taken`). The hash is of `unique` when given (what tells
    this one from the other), else of the text."""
    base = slug(text)
    if base and len(base) <= limit and not taken:
        return base
    tag = short_hash(unique if unique is not None else text, 6)
    base = base[: limit - len(tag) - 1].rstrip("-")
    return f"{base}-{tag}" if base else tag


def repo_name(common_dir: str) -> str:
    """The repository's name: its main worktree's folder, or a bare repository's folder less `.git`."""
    base = os.path.basename(common_dir.rstrip("/"))
    if base == ".git":
        return os.path.basename(os.path.dirname(common_dir.rstrip("/")))
    return base.removesuffix(".git")


def container_name(common_dir: str, worktree: str) -> str:
    """`dual-<repo>-<folder>-<hash of the worktree's path>`: valid for Docker, at most 63 characters,
    distinct for distinct paths, readable in `docker ps`."""
    repo = slug(repo_name(common_dir))[:16].strip("-") or "repo"
    folder = slug(os.path.basename(worktree.rstrip("/")))[:28].strip("-") or "wt"
    name = f"{NAME_PREFIX}-{repo}-{folder}-{path_hash(worktree)}"
    return name[:MAX_NAME]


def volume_name(container: str, what: str) -> str:
    return f"{container}-{slug(what)[:20] or 'v'}-{short_hash(what, 6)}"
