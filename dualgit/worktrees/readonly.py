"""What a container may write of the repository's git dir, laid out so that no write of the host's
can undo it.

A container is untrusted: an agent or an install script inside may write anything it can reach. It
can wreck its worktree's files and commits, and nothing that makes the host run a command: the
repository's `config` and `config.worktree` (core.fsmonitor, core.hooksPath, include.path, aliases,
filter and diff drivers, core.sshCommand ...), `hooks/` (dualgit's script too), `info/`, the legacy
`remotes/` and `branches/`, the other worktrees' admin dirs, submodules' git dirs, and the pointers
that say where a worktree's git dir is (`commondir`, `gitdir`, a linked worktree's `.git` file).

Why it holds: git writes its config (and its index and refs) by renaming a lock file over the old
file, and Linux detaches a bind mount whose mount point is renamed over or unlinked, in every mount
namespace. So a read-only mount over one file lasts only until the host's next `git config`. Here
the guard is a folder instead: the common dir is mounted read-only as a whole, and the host never
renames the common dir. Read-write folders are mounted into it for what git inside needs for its
everyday work: `objects/`, `refs/` and `logs/` (and `reftable/`), and a linked worktree's own admin
dir, for its HEAD and index. Nothing in those can make git run a command. The only file mounts left
sit in that admin dir (`commondir`, `gitdir`, `config.worktree`) and over the `.git` file, and git
writes those in place (`write_file`: the same inode, which keeps the mount), never by rename; and
when the repository reads per-worktree config (`extensions.worktreeConfig`), which `git config
--worktree` writes by rename, the admin dir stays read-only too. A `core.hooksPath` inside the
worktree (husky's `.husky`) is a folder mounted read-only.

The cost, said in the README: the main worktree's HEAD and index sit in the common dir, so git in
the main worktree's container reads (status, log, diff) and makes branches and pushes, but does
not commit, switch or stash; nor does any container delete a ref that is packed, or write a
submodule.
"""

from __future__ import annotations

import os
import subprocess

from dualgit.git.locate import GUARD, Location, hooks_dir

# What git inside writes in the common dir, none of which can make git run a command.
WRITABLE = ("objects", "refs", "logs", "reftable")


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


def worktree_config(folder: str) -> bool:
    """Whether git reads per-worktree config in this repository (`extensions.worktreeConfig`)."""
    try:
        found = subprocess.run(["git", "config", "--bool", "extensions.worktreeConfig"], cwd=folder,
                               capture_output=True, text=True, env={**os.environ, GUARD: "1"}, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return True  # unknown: the safe answer
    return found.stdout.strip() == "true"


def layout(loc: Location) -> tuple[list[str], list[str]]:
    """(read-only paths, read-write paths) to bind at the same path inside, beside the worktree's own
    read-write mount; the engine mounts a folder before what lies in it."""
    common, gitdir = loc.common_dir, loc.gitdir
    readonly, readwrite = [common], []
    _ensure(os.path.join(common, "logs"), folder=True)  # git makes it on a first reflog write: here it can't
    readwrite += [p for p in (os.path.join(common, name) for name in WRITABLE) if os.path.isdir(p)]
    hooks = hooks_dir(loc.worktree)
    if hooks is not None and _within(hooks, loc.worktree) and _ensure(hooks, folder=True):
        readonly.append(hooks)  # core.hooksPath in the worktree (husky): a folder, so it lasts
    if gitdir != common:
        dotgit = os.path.join(loc.worktree, ".git")
        if os.path.isfile(dotgit):
            readonly.append(dotgit)
        if not worktree_config(loc.worktree):
            readwrite.append(gitdir)
            for name in ("commondir", "gitdir", "config.worktree"):
                if _ensure(os.path.join(gitdir, name), folder=False):
                    readonly.append(os.path.join(gitdir, name))
    return sorted(set(readonly)), sorted(set(readwrite))


def mounts(loc: Location) -> list[dict[str, object]]:
    """The engine's `HostConfig.Mounts` entries for `layout`, parents before what they hold (the
    engine sorts by depth too, but an order of our own keeps the spec hash stable)."""
    readonly, readwrite = layout(loc)
    found = ([{"Type": "bind", "Source": p, "Target": p, "ReadOnly": True} for p in readonly]
             + [{"Type": "bind", "Source": p, "Target": p} for p in readwrite])
    # a file mount inside a read-write folder must come after that folder
    return sorted(found, key=lambda m: (str(m["Target"]).count("/"), str(m["Target"])))
