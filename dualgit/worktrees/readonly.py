"""What a container may not write: the files of the repository through which git on the host would
run a command (config, hooks, the pointers to a worktree's git dir). They are bind-mounted read-only
over the read-write mounts that git inside needs for its everyday work (objects, refs, the index).

A container is untrusted: an agent or an install script inside may write anything it can reach. It
can wreck its worktree's files, and nothing that makes the host run a command:
- the common dir's `config` and `config.worktree` (core.fsmonitor, core.hooksPath, include.path,
  aliases, filter and diff drivers, core.sshCommand ...), and each worktree's `config.worktree`;
- the hooks folder (`hooks/`, or `core.hooksPath` when it sits in a worktree), dualgit's shims too;
- `worktrees/`: every worktree's `commondir` and `gitdir`, which say where its git dir is, and the
  other worktrees' admin dirs (its own stays writable, for its HEAD and index);
- a linked worktree's `.git` file, which says where its admin dir is;
- `remotes/` and `branches/`, where files can define remotes (and their URLs) too;
- the git dirs of submodules under `modules/`: their config and hooks;
- the common dir itself, which is a mount point, so that it cannot be renamed away and replaced.
Missing ones are made first (an empty file, an empty folder), so that nothing can appear there.
"""

from __future__ import annotations

import os

from dualgit.git.locate import Location, hooks_dir


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _ensure(path: str, folder: bool) -> bool:
    """Make a missing file or folder (empty); whether the path is there now."""
    try:
        if folder:
            os.makedirs(path, exist_ok=True)
        elif not os.path.lexists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except OSError:
        pass
    return os.path.isdir(path) if folder else os.path.isfile(path)


def _submodules(common: str) -> list[str]:
    """Git dirs of submodules (`modules/NAME`, nested ones too): each holds a `config`."""
    found = []
    for top, dirs, files in os.walk(os.path.join(common, "modules")):
        if "config" in files and "HEAD" in files:
            found.append(top)
            dirs[:] = [d for d in dirs if d == "modules"]
    return found


def layout(loc: Location) -> tuple[list[str], list[str]]:
    """(read-only paths, read-write paths) to mount over the worktree's and the common dir's mounts,
    each at the same path inside. The read-write ones reopen the worktree's own admin dir under a
    read-only `worktrees/`."""
    common, gitdir = loc.common_dir, loc.gitdir
    mounted = [loc.worktree, common]  # what the container has read-write; nothing outside needs guarding
    readonly = [os.path.join(common, "config")]
    _ensure(os.path.join(common, "config.worktree"), folder=False)
    readonly.append(os.path.join(common, "config.worktree"))
    hooks = hooks_dir(loc.worktree) or os.path.join(common, "hooks")
    if any(_within(hooks, m) for m in mounted) and _ensure(hooks, folder=True):
        readonly.append(hooks)
    default_hooks = os.path.join(common, "hooks")
    if default_hooks != hooks and _ensure(default_hooks, folder=True):
        readonly.append(default_hooks)  # git uses it again the day core.hooksPath is unset
    # The common dir is a mount point of its own, so that it cannot be renamed away and replaced
    # (the main worktree's `.git` sits in its worktree's mount; elsewhere it is mounted already).
    readwrite = [common] if _within(common, loc.worktree) else []
    for legacy in ("remotes", "branches"):  # remotes defined by files, which `git fetch` still reads
        if _ensure(os.path.join(common, legacy), folder=True):
            readonly.append(os.path.join(common, legacy))
    if _ensure(os.path.join(common, "worktrees"), folder=True):
        readonly.append(os.path.join(common, "worktrees"))
    if gitdir != common:
        readwrite.append(gitdir)
        for name in ("commondir", "gitdir", "config.worktree"):
            if _ensure(os.path.join(gitdir, name), folder=False):
                readonly.append(os.path.join(gitdir, name))
        dotgit = os.path.join(loc.worktree, ".git")
        if os.path.isfile(dotgit):
            readonly.append(dotgit)
    for module in _submodules(common):
        readonly.append(os.path.join(module, "config"))
        if _ensure(os.path.join(module, "hooks"), folder=True):
            readonly.append(os.path.join(module, "hooks"))
    return sorted(set(readonly)), readwrite


def mounts(loc: Location) -> list[dict[str, object]]:
    """The engine's `HostConfig.Mounts` entries for `layout`: binds at the same path inside."""
    readonly, readwrite = layout(loc)
    return ([{"Type": "bind", "Source": p, "Target": p, "ReadOnly": True} for p in readonly]
            + [{"Type": "bind", "Source": p, "Target": p} for p in readwrite])
