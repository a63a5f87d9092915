"""The manual page that `git dual --help` shows (git turns it into `man git-dual`), made from the
commands' own help, so that the two say the same:

    python -m dualgit.cli.manpage > man/git-dual.1

A test checks that the committed page is what this makes. It is installed into `share/man/man1`
beside the `bin` that holds `git-dual`, where man looks for it.
"""

from __future__ import annotations

from dualgit import __version__
from dualgit.cli import tree
from dualgit.shell import exec

WIDTH = 78

DESCRIPTION = """\
Every git worktree gets a Docker container that bind-mounts it, so that every branch can run its
dev server on the same port at once, each at http://BRANCH.REPO.localhost:PORT through dualgit's
proxy. `git worktree add` makes and starts the container (a post-checkout hook, installed by
`git dual init` or `git dual install`); the container goes when the worktree goes. `git dual exec`
runs a command in it, in the same folder, as if it ran here."""

FILES = [
    (".dual.toml", "At a worktree's root: image, ports, tcp_ports, serve, env, setup, cache_dirs, [shared] files, "
                   "route, host, env_pass, env_block, idle_after, memory, cpus, strict. `git dual init` writes it, "
                   "commented; `git dual config` edits it."),
    ("$XDG_CONFIG_HOME/dualgit/config.toml (~/.config/dualgit/config.toml)",
     "Your defaults for every branch: idle_after, memory, cpus; and max_running. `git dual config --global` edits it."),
    ("$XDG_STATE_HOME/dualgit (~/.local/state/dualgit)", "The proxy's pid file, status and log; each "
                                                         "worktree's setup state and log."),
    ("$XDG_DATA_HOME/dualgit/allowed (~/.local/share/dualgit/allowed)",
     "What `git dual allow` allowed: one file per repository and exact list of settings."),
]

ENVIRONMENT = [
    ("DOCKER_HOST", "The engine (unix:// or tcp://); else /var/run/docker.sock, else ~/.docker/run/docker.sock."),
    ("DUALGIT_PROXY=0", "Do not start the proxy (hooks and commands print published ports instead)."),
    ("DUALGIT_PROXY_KEEPALIVE_TIMEOUT", "Seconds a kept-alive connection waits for its next request (default 30)."),
    ("DUALGIT_PLUGINS=a,b,no:c", "Load only the third-party plugins a and b (the built-ins always load); "
                                  "no:NAME turns any plugin off, a built-in too."),
]


def render() -> str:
    from dualgit.cli.app import app  # the manual page is the CLI's: made from its commands, above it

    out = [
        f'.TH GIT-DUAL 1 "" "dualgit {__version__}" "dualgit"',
        ".SH NAME",
        "git-dual \\- every git worktree its own machine: one Docker container per worktree",
        ".SH SYNOPSIS",
        ".B git dual",
        ".I COMMAND",
        "[ARGS]...",
        ".SH DESCRIPTION",
        _text(DESCRIPTION),
        ".SH COMMANDS",
        "Each command's own help, as `git dual COMMAND --help` prints it.",
    ]
    for name, command, ctx in tree.commands(app, WIDTH):
        text = exec.HELP if name == "git dual exec" else command.get_help(ctx)  # exec parses its own
        out += [f'.SS "{name}"', ".nf", _text(text), ".fi"]
    out.append(".SH FILES")
    for key, text in FILES:
        out += [".TP", f".B {_text(key)}", _text(text)]
    out.append(".SH ENVIRONMENT")
    for key, text in ENVIRONMENT:
        out += [".TP", f".B {_text(key)}", _text(text)]
    out += [".SH SEE ALSO", "git-worktree(1), docker(1); README.md in dualgit's source."]
    return "\n".join(out) + "\n"


def _text(text: str) -> str:
    """Plain text as roff: backslashes kept, and no line read as a request."""
    lines = text.replace("\\", "\\e").splitlines()
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in lines)


if __name__ == "__main__":
    print(render(), end="")
