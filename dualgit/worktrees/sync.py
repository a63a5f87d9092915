"""A worktree on an engine whose host is not this machine: its files live in volumes there, kept in
step with this machine's by unison (`remote/files.py`), through a small helper container that
holds the volumes and runs unison's server over the engine's own connection (`engine/pipe.py`).

Three volumes per worktree, each mounted in the branch's container where the host's folder would
have been bound, and in the helper under /sync:
- `worktree`: the worktree's files, both ways, but for what stays on the engine's side
  (`remote_only`: node_modules and the like) and what only the host may write (the `.git` file, a
  hooks folder inside the worktree);
- `state`: the folder the container's agent shares with the host (`agent.py`), both ways;
- `git`: the repository's common git dir, one way (host to engine), mounted read-only: git inside
  reads (log, diff, status) and writes nothing the host then runs.

The helper carries this machine's own unison (and the libraries it loads), so both ends are one
version; a helper made with another is removed and made anew, never trusted (`HELPER_VERSION`).
Where the sync stands is the sync process's status file (`state.sync_status`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dualgit.background import Lifecycle, spawn, state_dir
from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError
from dualgit.git.locate import Location, hooks_dir
from dualgit.naming import volume_name
from dualgit.worktrees import labels

if TYPE_CHECKING:
    from dualgit.config import Config
    from dualgit.engine.find import Endpoint
    from dualgit.engine.interface import Engine

ROOT = "/sync"  # in the helper: a folder per volume, and unison's own archive (ignored)
PARTS = ("worktree", "state", "git")
TOOLS = "/opt/dualgit-sync"  # in the helper: unison, its libraries and their loader
REMOTE_ONLY = ("node_modules", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox",
               ".next", ".nuxt", ".svelte-kit", ".turbo", ".parcel-cache", "target", ".gradle")
UNISON_HINT = "install unison on this machine (Debian and Ubuntu: apt install unison; macOS: brew install unison)"


def wanted(endpoint: Endpoint, config: Config | None = None) -> bool:
    """Whether this engine's worktrees are synced rather than bind-mounted: the user's `files`
    ("sync" or "bind") when set, else whether the engine is reached as another machine (ssh, or
    TCP to an address that is not loopback)."""
    from dualgit.config import load_user

    chosen = (config.files if config is not None else None) or load_user().files
    if chosen:
        return chosen == "sync"
    return not endpoint.is_local()


def helper_name(name: str) -> str:
    return f"{name}-sync"


def volumes(name: str) -> dict[str, str]:
    """Each part's volume."""
    return {part: volume_name(name, f"sync-{part}") for part in PARTS}


def mounts(loc: Location, name: str, workspace: str | None, shared: str) -> list[dict[str, Any]]:
    """What the branch's container mounts in place of the host's folders: the worktree (again at
    the workspace folder, when there is one), the agent's state folder (at `shared`), the git dir
    read-only."""
    found = volumes(name)
    out: list[dict[str, Any]] = [{"Type": "volume", "Source": found["worktree"], "Target": loc.worktree}]
    if workspace:
        out.append({"Type": "volume", "Source": found["worktree"], "Target": workspace})
    out.append({"Type": "volume", "Source": found["state"], "Target": shared})
    out.append({"Type": "volume", "Source": found["git"], "Target": loc.common_dir, "ReadOnly": True})
    return out


# The unison this machine has, and what the helper carries of it.

@dataclass(frozen=True)
class Unison:
    program: str
    version: str  # what `unison -version` says
    files: tuple[tuple[str, str], ...]  # (path here, name in TOOLS): the program, its libraries, their loader
    digest: str  # of all of them: the helper's version


def local_unison() -> Unison:
    """This machine's unison and what it loads (from `ldd`). One line naming the fix when missing."""
    found = shutil.which("unison")
    if found is None:
        raise DualgitError("this engine is on another machine, and its worktrees' files are synced with unison, "
                           "which is not installed here", hint=UNISON_HINT)
    program = os.path.realpath(found)
    said = subprocess.run([program, "-version"], capture_output=True, text=True, timeout=30).stdout.strip()
    files = [(program, "unison")]
    linked = subprocess.run(["ldd", program], capture_output=True, text=True, timeout=30).stdout
    for line in linked.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts and parts[0].startswith("/") else ""
        if path.startswith("/"):
            name = "ld.so" if "ld-linux" in path or "ld-musl" in path else os.path.basename(path)
            files.append((os.path.realpath(path), name))
    digest = hashlib.sha256(said.encode())
    for path, name in files:
        digest.update(name.encode())
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return Unison(program, said, tuple(files), digest.hexdigest()[:16])


def server_command(unison: Unison) -> list[str]:
    """How the helper runs the unison it carries: through the loader it came with."""
    if any(name == "ld.so" for _, name in unison.files):
        return [f"{TOOLS}/ld.so", "--library-path", TOOLS, f"{TOOLS}/unison", "-server"]
    return [f"{TOOLS}/unison", "-server"]  # a static build


def _archive(unison: Unison) -> bytes:
    import io
    import tarfile  # only when a helper is made: the hook imports this module

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for path, name in unison.files:
            info = tar.gettarinfo(path, arcname=f"{TOOLS.lstrip('/')}/{name}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return data.getvalue()


# The helper.

def ensure_volumes(api: Engine, loc: Location, name: str) -> None:
    for volume in volumes(name).values():
        api.create_volume(volume, {labels.REPO: loc.common_dir, labels.WORKTREE: loc.worktree})


def ensure_helper(api: Engine, loc: Location, name: str, unison: Unison, image: str) -> str:
    """The helper running, made from `image` (any with a POSIX sh: the agent's busybox), carrying
    `unison` (one made with another version is removed first): its id."""
    helper = helper_name(name)
    try:
        found = api.inspect_container(helper)
    except ApiError as exc:
        if exc.status != 404:
            raise DualgitError(f"cannot inspect {helper}: {exc.message}") from None
        found = None
    if found is not None:
        tags = (found.get("Config") or {}).get("Labels") or {}
        if not labels.owned(tags, loc.common_dir):
            raise DualgitError(f"a container named {helper} is there and not dualgit's for this worktree",
                               hint=f"remove or rename it (`docker rm -f {helper}`), then `git dual up`")
        if tags.get(labels.SYNC) == unison.digest:
            if not (found.get("State") or {}).get("Running"):
                api.start(helper)
            return str(found["Id"])
        api.remove_container(str(found["Id"]))  # another version's: replaced, not trusted
    ensure_volumes(api, loc, name)
    owner = os.stat(loc.worktree)
    prepare = (f"mkdir -p {ROOT}/.unison && chown {owner.st_uid}:{owner.st_gid} {ROOT}/.unison "
               + " ".join(f"{ROOT}/{p}" for p in PARTS) + " && exec sleep 2147483647")
    body = {
        "Image": image,
        "Entrypoint": ["/bin/sh", "-c", prepare],
        "Cmd": [],
        "User": "0:0",
        "Env": [f"UNISON={ROOT}/.unison", f"HOME={ROOT}/.unison"],
        "Labels": {labels.REPO: loc.common_dir, labels.WORKTREE: loc.worktree, labels.HELPER: "sync",
                   labels.SYNC: unison.digest, labels.STATE: state_dir()},
        "HostConfig": {
            "Init": True,
            "NetworkMode": "none",
            "RestartPolicy": {"Name": "unless-stopped"},
            "Mounts": [{"Type": "volume", "Source": v, "Target": f"{ROOT}/{p}"} for p, v in volumes(name).items()],
        },
    }
    try:
        made = api.create_container(body, helper)
    except ApiError as exc:
        if exc.status != 409:
            raise DualgitError(f"cannot make {helper}: {exc.message}") from None
        return ensure_helper(api, loc, name, unison, image)  # another process made it just now
    try:
        api.put_archive(made, "/", _archive(unison))
    except ApiError as exc:
        raise DualgitError(f"cannot copy unison into {helper}: {exc.message}") from None
    api.start(made)
    return made


def remove_helper(api: Engine, name: str) -> None:
    try:
        api.remove_container(helper_name(name))
    except ApiError:
        pass


# The sync process (`remote/run.py`): one per worktree, started whenever its container is.

def lifecycle(name: str) -> Lifecycle:
    return Lifecycle(state_dir("sync", f"{name}.lock"), state_dir("sync", f"{name}.pid"))  # its status outlives it


def start(loc: Location, name: str) -> None:
    """The worktree's sync process, started when none runs."""
    if lifecycle(name).alive():
        return
    os.makedirs(state_dir("sync", name), exist_ok=True)
    spawn(["sync-run", loc.worktree], log=state_dir("sync", name, "log"))


def stop(name: str) -> None:
    """End the worktree's sync process (its container is going), waiting up to 10 s for it."""
    import signal

    life = lifecycle(name)
    pid = life.pid()
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while life.alive() and time.monotonic() < deadline:
        time.sleep(0.05)


def ignored(loc: Location, config: Config) -> tuple[list[str], list[str]]:
    """(unison `ignore` patterns, `forcepartial` paths from this machine) for the worktree's part."""
    names = list(config.remote_only if config.remote_only is not None else REMOTE_ONLY)
    cache = config.data.get("cache_dirs")
    patterns = [f"Path worktree/{n}" if "/" in n else f"Name {n}" for n in names]
    patterns += [f"Path worktree/{str(c).strip('/')}" for c in (cache if isinstance(cache, list) else [])]
    forced = []
    if loc.common_dir.startswith(loc.worktree.rstrip("/") + "/"):
        patterns.append("Path worktree/.git")  # the main worktree's git dir: the `git` part's
    else:
        forced.append("worktree/.git")  # a linked worktree's pointer: only the host's
    hooks = hooks_dir(loc.worktree)
    if hooks is not None and hooks.startswith(loc.worktree.rstrip("/") + "/"):
        forced.append("worktree/" + hooks[len(loc.worktree.rstrip("/")) + 1:])
    return patterns, [*forced, "git"]
