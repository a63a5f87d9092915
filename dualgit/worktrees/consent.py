"""The user's yes, given on the host, to settings that widen a container's reach.

`.dual.toml` and devcontainer.json sit in the worktree, which the container writes: a process inside
could ask there for privileged mode or a mount of the engine's socket, and the next `git dual up`
would hand it the host. So whatever widens a container's reach beyond its worktree (privileged
mode, capabilities beyond Docker's default set, devices, a mount of a host path outside the
worktree, host networking or PID namespace, a security option that turns a protection off) is
applied only once the user said yes on the host, with `git dual allow`, as `direnv allow` does.

The yes is kept outside the worktree (`$XDG_DATA_HOME/dualgit/allowed/`), one file per repository
and exact list of settings: a changed setting is another list, and asks again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

from dualgit.background import atomic_write
from dualgit.hookspecs import ContainerSettings

# Docker's default capabilities (moby's `oci/caps/defaults.go`): adding one of these widens nothing.
DEFAULT_CAPS = frozenset({"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                          "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"})
HARMLESS_SECURITY_OPTS = frozenset({"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"})


def _wide_cap(cap: str) -> bool:
    return cap.upper().removeprefix("CAP_") not in DEFAULT_CAPS


def _wide_opt(opt: str) -> bool:
    return opt.strip() not in HARMLESS_SECURITY_OPTS


def _outside(host: str, root: str) -> bool:
    """Whether a bind's host path lies outside the worktree (Docker follows a symlink planted in it)."""
    path = os.path.realpath(host)
    return not (path == root or path.startswith(root.rstrip("/") + "/"))


def widening(settings: ContainerSettings, worktree: str) -> list[str]:
    """What in `settings` widens the container's reach, each as one plain phrase, sorted: the exact
    list the user allows."""
    root = os.path.realpath(worktree)
    found = ["privileged"] if settings.privileged else []
    found += [f"capAdd {c.upper().removeprefix('CAP_')}" for c in settings.cap_add if _wide_cap(c)]
    found += [f"securityOpt {o.strip()}" for o in settings.security_opt if _wide_opt(o)]
    found += [f"device {device}" for device in settings.devices]
    found += [f"network {settings.network_mode}"] if settings.network_mode else []
    found += [f"pid {settings.pid_mode}"] if settings.pid_mode else []
    found += [f"mount {host} -> {inside} (read-only)" for host, inside in settings.mounts if _outside(host, root)]
    found += [f"mount {host} -> {inside}" + (" (read-only)" if ro else "")
              for host, inside, ro in settings.binds if _outside(host, root)]
    found += [f"host variable {var} (as {key})" for key, names in settings.env_from_host.items() for var in names]
    return sorted(set(found))


def held_back(settings: ContainerSettings, worktree: str) -> ContainerSettings:
    """`settings` without what `widening` names."""
    root = os.path.realpath(worktree)
    return dataclasses.replace(
        settings, privileged=False, devices=[], network_mode=None, pid_mode=None,
        cap_add=[c for c in settings.cap_add if not _wide_cap(c)],
        security_opt=[o for o in settings.security_opt if not _wide_opt(o)],
        mounts=[m for m in settings.mounts if not _outside(m[0], root)],
        binds=[b for b in settings.binds if not _outside(b[0], root)],
        env={k: v for k, v in settings.env.items() if k not in settings.env_from_host}, env_from_host={},
    )


def folder() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "dualgit", "allowed")


def _file(repo: str, settings: list[str]) -> str:
    key = hashlib.sha256(json.dumps([repo, sorted(settings)]).encode()).hexdigest()
    return os.path.join(folder(), f"{key}.json")


def allowed(repo: str, settings: list[str]) -> bool:
    return not settings or os.path.isfile(_file(repo, settings))


def allow(repo: str, settings: list[str]) -> str:
    """Record the user's yes; the file it is kept in."""
    path = _file(repo, settings)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, json.dumps({"repo": repo, "settings": sorted(settings), "allowed_at": time.time()}).encode())
    return path


def allowances(repo: str) -> list[list[str]]:
    """Every list of settings allowed for `repo`."""
    found = []
    try:
        names = sorted(os.listdir(folder()))
    except OSError:
        return []
    for name in names:
        try:
            with open(os.path.join(folder(), name)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("repo") == repo:
            found.append(list(data.get("settings") or []))
    return found


def revoke(repo: str) -> int:
    """Take back every yes given for `repo`; how many there were."""
    gone = 0
    for settings in allowances(repo):
        try:
            os.unlink(_file(repo, settings))
            gone += 1
        except OSError:
            pass
    return gone
