"""Who runs inside a worktree's container: files it makes in the worktree belong to the person who
owns the worktree.

On a Linux host whose user is not root, with an engine that keeps owners as they are (rootful
Docker or Podman), the container runs as the host user's uid and gid. Its image's own user is
remapped to them, as devcontainers' `updateRemoteUserUID` does: the user named by `remoteUser` (or
a plugin's `user`), else the image's user with that uid, else its first regular user (node's
`node`), else a `dualgit` user made for it; its HOME is theirs and writable. Where the engine maps
owners itself (rootless Docker and Podman, Docker Desktop's file share), and for root, nothing
changes. Root stays one flag away: `git dual exec --root`.
"""

from __future__ import annotations

import os
import sys

from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dualgit.engine.interface import Engine

ROOT = "0:0"

# POSIX sh with busybox's or coreutils' awk, grep, cut, chown: run as root once, when the container
# is made. /etc/passwd is rewritten in place (cat >), as it may be a bind mount or a symlink.
PREPARE = r"""set -e
uid=$DUALGIT_UID gid=$DUALGIT_GID want=$DUALGIT_USER
pick() { awk -F: -v k="$1" -v f="$2" '$f == k { print; exit }' /etc/passwd; }
if [ -n "$want" ]; then line=$(pick "$want" 1); else line=$(pick "$uid" 3); fi
[ -n "$line" ] || [ -n "$want" ] || line=$(awk -F: '$3 >= 1000 && $3 < 60000 { print; exit }' /etc/passwd)
grep -q "^[^:]*:[^:]*:$gid:" /etc/group 2>/dev/null || echo "dualgit:x:$gid:" >>/etc/group
if [ -z "$line" ]; then
  name=${want:-dualgit}; home=/home/$name
  echo "$name:x:$uid:$gid:$name:$home:/bin/sh" >>/etc/passwd
else
  name=${line%%:*}; home=$(echo "$line" | cut -d: -f6)
  case $home in ''|/|/nonexistent) home=/home/$name ;; esac
  awk -F: -v OFS=: -v n="$name" -v u="$uid" -v g="$gid" -v h="$home" \
    '$1 == n { $3 = u; $4 = g; $6 = h } { print }' /etc/passwd >/tmp/.dualgit-passwd
  cat /tmp/.dualgit-passwd >/etc/passwd && rm -f /tmp/.dualgit-passwd
  [ "$(echo "$line" | cut -d: -f3)" = "$uid" ] || [ ! -d "$home" ] || chown -R "$uid:$gid" "$home"
fi
mkdir -p "$home" && chown "$uid:$gid" "$home"
echo "$name $home"
"""


def engine_maps_owners(api: Engine) -> bool:
    """Whether files a container makes in a bind mount come out as the host user's already: a
    rootless engine, or a desktop VM's file share."""
    if sys.platform != "linux":
        return True
    try:
        info = api.info()
    except ApiError:
        return False
    options = " ".join(str(o) for o in info.get("SecurityOptions") or [])
    return "name=rootless" in options or "Docker Desktop" in str(info.get("OperatingSystem", ""))


def container_user(api: Engine, named: str | None) -> tuple[str | None, bool]:
    """The container's `User`, and whether the image's user must be remapped to the host's ids once
    it is made. `named` is `remoteUser` or a plugin's `user`: it wins, remapped where owners need it."""
    uid = os.getuid()
    if uid == 0 or engine_maps_owners(api):
        return named, False
    return (named or f"{uid}:{os.getgid()}"), True


def prepare(api: Engine, container: str, named: str | None) -> None:
    """Remap (or make) the container's user for the host's uid and gid, with a writable HOME: run as
    root in a container just made, before any exec of a person's or a setup step's."""
    env = [f"DUALGIT_UID={os.getuid()}", f"DUALGIT_GID={os.getgid()}", f"DUALGIT_USER={named or ''}"]
    try:
        code, output = api.run(container, ["sh", "-c", PREPARE], user=ROOT, env=env)
    except ApiError as exc:
        code, output = -1, exc.message.encode()
    if code != 0:
        raise DualgitError(
            f"cannot prepare a user with uid {os.getuid()} in container {container}: "
            f"{output.decode(errors='replace').strip() or f'exit status {code}'}",
            hint="the image needs sh, awk and chown (busybox or coreutils); `git dual exec --root` runs as root",
        )
