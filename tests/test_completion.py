"""Tab completion of `git dual` in real bash (through git's own completion), fish and zsh, with the
lines `git dual shell-init SHELL` prints, in a real repository with worktrees."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import IN_CI, add_worktree
from dualgit.cli.app import app
from dualgit.cli.completion import commands

GIT_BASH_COMPLETION = ("/usr/share/bash-completion/completions/git",  # Debian's git; then Fedora's, Homebrew's
                       "/usr/share/git-core/contrib/completion/git-completion.bash",
                       "/usr/local/etc/bash_completion.d/git-completion.bash",
                       "/opt/homebrew/etc/bash_completion.d/git-completion.bash")
TOP = sorted({c.words[0] for c in commands(app)})
PROXY = ["install-service", "run", "start", "status", "stop", "uninstall-service"]


def need(program: str) -> None:
    if shutil.which(program) is None:
        message = f"{program} is missing: scripts/test installs it"
        pytest.fail(message) if IN_CI else pytest.skip(message)


@pytest.fixture
def worktrees(repo: Path) -> Path:
    add_worktree(repo, "demo-auth", "feat/auth")
    add_worktree(repo, "demo-fix", "fix-bug")
    return repo


def bash_complete(lines: list[str], cwd: Path) -> list[list[str]]:
    """What git's bash completion offers for each line, TAB pressed at its end."""
    found = [path for path in GIT_BASH_COMPLETION if Path(path).exists()]
    if not found:
        pytest.fail("git's bash completion is not where git installs it")
    script = [f"source {found[0]}", 'eval "$(git dual shell-init bash)"']
    for line in lines:
        script += [f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; read -ra COMP_WORDS <<< \"$COMP_LINE\"",
                   '[ "${COMP_LINE: -1}" = " " ] && COMP_WORDS+=("")', "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))",
                   "COMPREPLY=(); __git_wrap__git_main; echo \"${COMPREPLY[*]}\""]
    out = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [sorted(line.split()) for line in out.stdout.splitlines()]


def fish_complete(lines: list[str], cwd: Path) -> list[list[str]]:
    need("fish")
    script = "git dual shell-init fish | source\n" + "".join(
        f"echo (complete -C '{line}' | string replace -r '\\t.*' '')\n" for line in lines)
    out = subprocess.run(["fish", "--no-config", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [sorted(set(line.split()) - {"--help"}) for line in out.stdout.splitlines()]  # fish offers --help to all


ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'autoload -Uz compinit; compinit -u -D'
zpty -w z "zstyle ':completion:*:*:git:*' user-commands dualfoo:'a git-dualfoo of the user'"
zpty -w z 'eval "$(git dual shell-init zsh)"; eval "$(git dual shell-init zsh)"'  # twice: an rc read again
# each match that completion adds is printed too, one per line, as HIT:match
zpty -w z 'compadd () { local -a hits; builtin compadd -O hits "$@"; print -rl -- "" ${^hits/#/HIT:}; builtin compadd "$@" }'
# Ctrl-T: complete as TAB does, then print a marker (typed with quotes, so that only the output matches)
zpty -w z 'complete-then-mark () { zle complete-word; print -r -- "" "DO""NE" }'
zpty -w z 'zle -N complete-then-mark; bindkey "^T" complete-then-mark'
local out
zpty -n -w z "$1"$'\x14'
zpty -r -m z out '*DONE*'
zpty -d z
print -r -- "$out" | tr -d '\r' | grep -a '^HIT:' | cut -c5- | sort -u | tr '\n' ' '
"""


def zsh_complete(line: str, cwd: Path) -> list[str]:
    """What zsh's own git completion offers for the line, in an interactive zsh on a pseudo-terminal."""
    need("zsh")
    out = subprocess.run(["zsh", "-f", "-c", ZSH_DRIVER, "zsh", line], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return sorted(out.stdout.split())


def test_bash_completes_commands_options_and_branches(worktrees: Path) -> None:
    offered = bash_complete(["git du", "git dual ", "git dual pr", "git dual proxy ", "git dual proxy status --",
                             "git dual rm ", "git dual rm f", "git dual down --", "git dual shell-init "], worktrees)
    assert offered == [["dual"], TOP, ["proxy"], PROXY, ["--json"],
                       ["feat/auth", "fix-bug", "main"], ["feat/auth", "fix-bug"], ["--all", "--rm"], ["bash", "fish", "zsh"]]


def test_fish_completes_commands_options_and_branches(worktrees: Path) -> None:
    offered = fish_complete(["git du", "git dual ", "git dual proxy ", "git dual proxy status --", "git dual rm f",
                             "git dual open ", "git dual down --", "git dual exec --"], worktrees)
    assert offered == [["dual"], TOP, PROXY, ["--json"], ["feat/auth", "fix-bug"],
                       ["feat/auth", "fix-bug", "main"], ["--all", "--rm"], ["--env", "--no-wait", "--root", "--service"]]


def test_zsh_completes_commands_options_and_branches(worktrees: Path) -> None:
    assert zsh_complete("git du", worktrees) == ["dual", "dualfoo"]  # the user's own user-commands stay
    assert zsh_complete("git dual ", worktrees) == TOP
    assert zsh_complete("git dual rm ", worktrees) == ["feat/auth", "fix-bug", "main"]
    assert zsh_complete("git dual proxy ", worktrees) == PROXY


def test_every_command_and_option_of_the_cli_is_offered() -> None:
    """The lists come from the commands themselves (pure logic: no shell)."""
    by_words = {c.words: c for c in commands(app)}
    assert by_words[("up",)].options == ("--recreate", "--setup") and by_words[("up",)].branches
    assert by_words[("proxy", "status")].options == ("--json",)
    assert by_words[("exec",)].options == ("-e", "--env", "--root", "--no-wait", "--service")
    assert not by_words[("ls",)].branches and by_words[("rm",)].branches
    assert "proxy" in TOP and "shell-init" in TOP and "help" not in TOP
