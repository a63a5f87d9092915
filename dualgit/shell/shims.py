"""PATH shims: one tiny sh script per routed command name, in a folder put first on PATH by
`git dual shell-init` (or `git dual env`). In a dualgit worktree a shim sends its command into the
worktree's container; anywhere else it runs the host's real binary, without Python."""

from __future__ import annotations

import os
import sys

from dualgit.background import atomic_write
from dualgit.shell.route import DEFAULT_ROUTED, NEVER_ROUTED

MARKER = ".dualgit-shims"  # marks the folder, so that shims and `route` skip it on PATH
TEMPLATE = """#!/bin/sh
# dualgit route shim (dualgit-route-v1): `git dual which {name}` says where {name} runs.
n='{name}' py='{python}' shims='{folder}'
# In a worktree whose repository's git config says `dual.enabled = true` (`git dual install`), run
# in its container. The config is read here, without starting git: a shim must cost next to nothing.
d=$PWD
while [ -z "$DUALGIT_NO_ROUTE" ] && [ -n "$d" ]; do
  if [ -e "$d/.git" ]; then
    g=$d/.git on=
    if [ -f "$g" ]; then
      read -r g < "$g"; g=${{g#gitdir: }}; case $g in /*) ;; *) g=$d/$g ;; esac
      if [ -f "$g/commondir" ]; then read -r c < "$g/commondir"; case $c in /*) g=$c ;; *) g=$g/$c ;; esac; fi
    fi
    s=
    while IFS= read -r l || [ -n "$l" ]; do
      l=${{l#"${{l%%[! 	]*}}"}}
      case $l in
        '['[dD][uU][aA][lL]']'*) s=1 ;;
        '['*) s= ;;
        [eE][nN][aA][bB][lL][eE][dD]*)
          r=${{l#???????}}; r=${{r#"${{r%%[! 	]*}}"}}
          case $r in '') v=true ;; =*) v=${{r#=}}; v=${{v#"${{v%%[! 	]*}}"}}; v=${{v%%[ 	#;]*}} ;; *) continue ;; esac
          [ -n "$s" ] && case $v in [tT][rR][uU][eE]|[yY][eE][sS]|[oO][nN]|1) on=1 ;; *) on= ;; esac ;;
      esac
    done < "$g/config"
    [ -n "$on" ] && exec "$py" -P -c \\
      'import sys; from dualgit.cli.main import main; sys.exit(main(["route", *sys.argv[1:]]))' "$n" "$d" "$@"
    break
  fi
  d=${{d%/*}}
done
set -f; IFS=:
for p in $PATH; do
  case $p in ''|"$shims"|"$shims/") continue ;; esac
  [ -e "$p/.dualgit-shims" ] && continue
  if [ -x "$p/$n" ] && [ ! -d "$p/$n" ]; then unset IFS; set +f; exec "$p/$n" "$@"; fi
done
echo "$n: command not found" >&2
exit 127
"""


def shim_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "dualgit", "shims")


def ensure(names: tuple[str, ...] | list[str] = DEFAULT_ROUTED) -> str:
    """Write (or refresh) the shims for these names; never for names that must not route."""
    folder = shim_dir()
    os.makedirs(folder, exist_ok=True)
    marker = os.path.join(folder, MARKER)
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("dualgit PATH shims; `git dual shell-init` puts this folder on PATH\n")
    for name in names:
        if name in NEVER_ROUTED or "/" in name or not name or name.startswith("."):
            continue
        path = os.path.join(folder, name)
        text = TEMPLATE.format(name=name, python=sys.executable, folder=folder)
        try:
            with open(path) as f:
                if f.read() == text:
                    continue
        except OSError:
            pass
        atomic_write(path, text.encode(), 0o755)
    return folder


def ensure_for_worktree(worktree: str) -> None:
    """Shims for the names a worktree's `.dual.toml` adds with `route` (called by `up` and the hook)."""
    from dualgit.shell.route import rules

    extra = sorted(rules(worktree).route)
    if extra:
        ensure(extra)


def shell_init(shell: str, completion: str = "") -> str:
    """The rc lines for `shell`: the shim folder first on PATH, then `completion` (the tab completion
    lines, which the CLI makes from its commands)."""
    folder = ensure()
    _ensure_here()
    if shell == "fish":
        return (f"if not contains -- '{folder}' $PATH\n    set -gx PATH '{folder}' $PATH\nend\n") + completion
    if shell not in ("bash", "zsh", "sh"):
        from dualgit.errors import DualgitError

        raise DualgitError(f"unknown shell {shell!r}", hint="git dual shell-init bash|zsh|fish")
    rehash = "hash -r 2>/dev/null" if shell != "zsh" else "rehash"
    return (f"case \":$PATH:\" in *':{folder}:'*) ;; *) export PATH='{folder}':\"$PATH\" ;; esac\n{rehash}\n"
            + completion)


def _ensure_here() -> None:
    from dualgit.errors import DualgitError
    from dualgit.git.locate import locate

    try:
        ensure_for_worktree(locate().worktree)
    except DualgitError:
        pass  # not in a worktree, or its .dual.toml is broken: `git dual up` says so


def env_lines() -> str:
    folder = ensure()
    _ensure_here()
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != folder]
    return f"export PATH='{os.pathsep.join([folder, *rest])}'\n"


def which(name: str, folder: str | None = None) -> str:
    from dualgit.errors import DualgitError
    from dualgit.git.locate import locate
    from dualgit.shell.route import decide, host_binary

    real = host_binary(name)
    here = f"this machine's {real}" if real else "this machine (where it is not installed)"
    try:
        loc = locate(folder)
    except DualgitError:
        return f"{name}: runs on {here}: not in a git worktree"
    import subprocess

    enabled = subprocess.run(["git", "-C", loc.worktree, "config", "--bool", "dual.enabled"],
                             capture_output=True, text=True).stdout.strip() == "true"
    if not enabled:
        return f"{name}: runs on {here}: {loc.worktree} is in a repository without dualgit (`git dual install`)"
    inside, why = decide(name, loc.worktree)
    if not os.path.exists(os.path.join(shim_dir(), name)) and inside:
        why += "; but it has no shim yet (`git dual up` or `git dual shell-init` makes it)"
    if inside:
        from dualgit.naming import container_name

        return f"{name}: runs in container {container_name(loc.common_dir, loc.worktree)} for {loc.worktree}: {why}"
    return f"{name}: runs on {here}: {why}"
