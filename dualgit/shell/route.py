"""What a PATH shim calls inside a dualgit worktree: `git dual route NAME WORKTREE ARGS...`.

It decides where NAME runs (the container, unless `.dual.toml` keeps it on the host or it never
routes), then becomes that: an exec into the container, or the host's real binary. It shares
`exec`'s path, and `tests/test_lean.py` pins what both import; TOML is read only when `.dual.toml`
mentions routing at all.
"""

from __future__ import annotations

import os
import sys

from dualgit.errors import DualgitError

DEFAULT_ROUTED = (
    "node", "npm", "npx", "pnpm", "yarn", "bun", "deno", "python", "python3", "pip", "pip3", "uv", "pytest",
    "ruby", "bundle", "go", "cargo", "make", "curl", "wget", "psql", "redis-cli", "playwright",
)
NEVER_ROUTED = frozenset({
    "git", "git-dual", "ssh", "scp", "gpg", "docker", "sudo", "sh", "bash", "zsh", "fish", "dash", "env",
    "vi", "vim", "nvim", "emacs", "nano", "code", "cursor", "subl", "idea", "zed", "hx", "less", "more",
})
# Host-only variables stay on the host; every other variable (FOO=1 npm test) goes in.
HOST_ONLY = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "TMPDIR", "TMP", "TEMP", "TEMPDIR", "HOSTNAME",
    "SHLVL", "_", "MAIL", "DISPLAY", "LS_COLORS", "TERM", "TERM_SESSION_ID", "TERM_PROGRAM", "TERM_PROGRAM_VERSION",
    "VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "MANPATH", "INFOPATH", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH",
    "BROWSER", "EDITOR", "VISUAL", "PAGER", "KUBECONFIG",
})
HOST_ONLY_PREFIXES = ("SSH_", "GPG_", "XDG_", "DBUS_", "WAYLAND_", "DOCKER_", "DUALGIT_", "GIT_", "PYENV_", "NVM_",
                      "CONDA_", "KITTY_", "ITERM_", "VSCODE_", "TMUX", "__")
ROUTE_KEYS = ("route", "host", "env_pass", "env_block")


class Rules:
    __slots__ = ("route", "host", "env_pass", "env_block")

    def __init__(self, data: dict[str, object]) -> None:
        def names(key: str) -> frozenset[str]:
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise DualgitError(f"`{key}` in .dual.toml must be a list of names",
                                   hint=f"`git dual config set {key} '[\"NAME\"]'`, or `git dual config add {key} NAME`")
            if key in ("route", "host"):  # command names become shim files: a name, never a path or a script
                bad = [v for v in value if not _command_name(v)]
                if bad:
                    raise DualgitError(f"`{key}` in .dual.toml names {bad[0]!r}, which is not a command name",
                                       hint="letters, digits and . _ + - only, not starting with . or -")
            return frozenset(value)

        self.route, self.host = names("route"), names("host")
        self.env_pass, self.env_block = names("env_pass"), names("env_block")


def _command_name(name: str) -> bool:
    return bool(name) and name[0] not in ".-" and all(c.isascii() and (c.isalnum() or c in "._+-") for c in name)


def rules(worktree: str) -> Rules:
    """The routing keys of the worktree's `.dual.toml` (no file, or no such key: the defaults).
    Parsed TOML is cached beside the user's other caches, keyed by the file's mtime and size, so a
    routed command reads one short file rather than parsing TOML each time."""
    path = os.path.join(worktree, ".dual.toml")
    try:
        st = os.stat(path)
    except OSError:
        return Rules({})
    stamp = f"{st.st_mtime_ns} {st.st_size} {path}"
    cache = _cache_file(path)
    try:
        with open(cache) as f:
            lines = f.read().split("\n")
        if lines[0] == stamp:
            return Rules({key: values.split("\0") if values else [] for key, _, values in
                          (line.partition("=") for line in lines[1:] if line)})
    except OSError:
        pass
    with open(path, "rb") as f:
        raw = f.read()
    data: dict[str, object] = {}
    if any(key.encode() in raw for key in ROUTE_KEYS):
        from dualgit.config import read_toml

        data = read_toml(raw.decode("utf-8", "replace"), path)
    found = Rules(data)
    try:
        from dualgit.background import atomic_write

        os.makedirs(os.path.dirname(cache), exist_ok=True)
        atomic_write(cache, (stamp + "\n" + "".join(f"{k}={chr(0).join(sorted(getattr(found, k)))}\n"
                                                    for k in ROUTE_KEYS)).encode())
    except OSError:
        pass  # no cache: slower, not wrong
    return found


def _cache_file(path: str) -> str:
    import zlib

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dualgit", "route", "%08x" % zlib.crc32(path.encode("utf-8", "surrogateescape")))


def decide(name: str, worktree: str, rule: Rules | None = None) -> tuple[bool, str]:
    """(whether NAME runs in the container, why)."""
    rule = rule or rules(worktree)
    if name in NEVER_ROUTED:
        return False, f"{name} never routes: it works with this machine's files and credentials"
    if name in rule.host:
        return False, f"`host` in {worktree}/.dual.toml keeps {name} on this machine"
    if name in rule.route:
        return True, f"`route` in {worktree}/.dual.toml sends {name} in"
    if name in DEFAULT_ROUTED:
        return True, f"{name} is on dualgit's default route list"
    return False, f"{name} is not on the route list (add it: `git dual config add route {name}`)"


def passed_env(environ: dict[str, str] | os._Environ[str], rule: Rules) -> list[str]:
    """KEY=VALUE for the container: every variable but the host-only ones (see HOST_ONLY), with
    `env_pass` and `env_block` from `.dual.toml` having the last word."""
    out = []
    for key, value in environ.items():
        host_only = key in HOST_ONLY or key.startswith(HOST_ONLY_PREFIXES)
        if key in rule.env_block or (host_only and key not in rule.env_pass):
            continue
        out.append(f"{key}={value}")
    return out


def host_binary(name: str) -> str | None:
    """NAME on PATH, skipping every shim dir (however often PATH lists it)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or _is_shim_dir(folder):
            continue
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def _is_shim_dir(folder: str) -> bool:
    return os.path.exists(os.path.join(folder, ".dualgit-shims"))


def main(args: list[str]) -> int:
    if len(args) < 2:
        print("dualgit: usage: git dual route NAME WORKTREE [ARG]...", file=sys.stderr)
        return 2
    name, worktree, rest = args[0], args[1], args[2:]
    try:
        rule = rules(worktree)
        inside, _why = decide(name, worktree, rule)
        if not inside:
            real = host_binary(name)
            if real is None:
                print(f"{name}: command not found", file=sys.stderr)
                return 127
            os.execv(real, [name, *rest])
        from dualgit.git.locate import locate
        from dualgit.shell import exec

        loc = locate(worktree)
        return exec.run(exec.ExecRequest([name, *rest], passed_env(os.environ, rule), True), loc)
    except DualgitError as exc:
        print(f"dualgit: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), file=sys.stderr)
        return 1
