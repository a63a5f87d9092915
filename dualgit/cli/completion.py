"""Tab completion for `git dual` in bash, zsh and fish, made from the commands themselves: their
names, their options, and the worktrees' branches where a command takes BRANCH|PATH. `git dual
shell-init` adds it to the rc lines, so a TAB runs no Python; branches come from
`git worktree list --porcelain` when TAB is pressed.

bash: git's own completion calls `_git_dual`. zsh: its `_git` calls `_git-dual`, and a
`user-commands` style lists `dual` among git's commands. fish: completions of `git` under
conditions of our own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import typer

from dualgit.cli import tree
from dualgit.shell import exec

BRANCHES_SH = "git worktree list --porcelain 2>/dev/null | sed -n 's|^branch refs/heads/||p'"
BRANCHES_FISH = 'git worktree list --porcelain 2>/dev/null | string replace -rf "^branch refs/heads/" ""'
EXEC_OPTIONS = tuple(n for names, _, _ in exec.OPTIONS if names != ("--",) for n in names)  # exec parses its own
SHELLS = ("bash", "zsh", "fish")


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]  # ("up",) or ("proxy", "run")
    summary: str
    options: tuple[str, ...]
    branches: bool  # takes BRANCH|PATH
    values: tuple[str, ...] = ()  # the fixed choices of its argument


def commands(app: typer.Typer) -> list[Command]:
    found = []
    for name, command, _ctx in tree.commands(app):
        words = tuple(name.split()[2:])
        options: list[str] = []
        branches = False
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                options += [o for o in (*param.opts, *param.secondary_opts) if o not in ("-h", "--help")]
            elif param.metavar == "BRANCH|PATH":
                branches = True
        if words == ("exec",):
            options = list(EXEC_OPTIONS)
        summary = (command.help or "").split("\n")[0].split(": ")[0].rstrip(".")
        found.append(Command(words, summary, tuple(options), branches, SHELLS if words == ("shell-init",) else ()))
    return found


def script(shell: str, app: typer.Typer) -> str:
    """The completion lines for `shell` (bash, zsh or fish; none for sh), for `app`'s commands."""
    make = {"bash": _bash, "zsh": _zsh, "fish": _fish}.get(shell)
    return make(commands(app)) if make else ""


class Entry(NamedTuple):
    """A first word after `git dual`: a command (`leaf`), or a group of them (`members`)."""
    name: str
    summary: str
    leaf: Command | None
    members: tuple[Command, ...]


def _tree(cmds: list[Command]) -> list[Entry]:
    """The first words in `--help` order, each once; a group is summed up by its commands' names."""
    entries: dict[str, Entry] = {}
    for c in cmds:
        if len(c.words) == 1:
            entries[c.words[0]] = Entry(c.words[0], c.summary, c, ())
        else:
            group = entries.get(c.words[0]) or Entry(c.words[0], "", None, ())
            members = (*group.members, c)
            entries[c.words[0]] = group._replace(members=members, summary="|".join(m.words[1] for m in members))
    return list(entries.values())


def _arguments(c: Command, branches: str, values: str, names: str) -> str:
    """What the shell's code for a command's argument is: branches, fixed values, or command names."""
    if c.branches:
        return branches
    if c.values:
        return values.format(" ".join(c.values))
    return names if c.words == ("which",) else ""


def _bash(cmds: list[Command]) -> str:
    """`_git_dual`, which git's bash completion calls with cur, words and cword set, and its helpers
    (`__gitcomp`, `__gitcomp_nl`, `__git_find_on_cmdline`, `__git`) at hand."""
    lines = ["__git_dual_branches () {", f"\t__{BRANCHES_SH}", "}", "_git_dual () {"]
    tree = _tree(cmds)
    top = " ".join(e.name for e in tree)
    lines += [f'\tlocal command="$(__git_find_on_cmdline "{top}")"',
              f'\tif [ -z "$command" ]; then __gitcomp "{top}"; return; fi',
              '\tcase "$command,$cur" in']
    for name, _, c, members in tree:
        if c is None:
            names = " ".join(m.words[1] for m in members)
            lines += [f"\t{name},*)", f'\t\tlocal sub="$(__git_find_on_cmdline "{names}")"',
                      f'\t\tif [ -z "$sub" ]; then __gitcomp "{names}"; return; fi',
                      '\t\tcase "$sub,$cur" in']
            lines += [f'\t\t{m.words[1]},-*) __gitcomp "{" ".join(m.options)}" ;;' for m in members if m.options]
            lines += ["\t\tesac ;;"]
            continue
        if c.options:
            lines.append(f'\t{name},-*) __gitcomp "{" ".join(c.options)}" ;;')
        argument = _arguments(c, '__gitcomp_nl "$(__git_dual_branches)"', '__gitcomp "{}"',
                              '__gitcomp_nl "$(compgen -c -- "$cur" | sort -u)"')
        if argument:
            lines.append(f"\t{name},*) {argument} ;;")
    return "\n".join([*lines, "\tesac", "}", ""])


def _zsh(cmds: list[Command]) -> str:
    """`_git-dual`, which zsh's `_git` calls with words[1] = dual; and `dual` among git's commands."""
    def described(pairs: list[tuple[str, str]]) -> str:
        return " ".join(_zsh_quote(f"{name}:{summary}") for name, summary in pairs)

    tree = _tree(cmds)

    lines = ["() {  # `dual` among git's commands, beside the user's own user-commands",
             "\tlocal -a own; zstyle -g own ':completion:*:*:git:*' user-commands",
             "\tzstyle ':completion:*:*:git:*' user-commands ${own:#dual:*} 'dual:every git worktree its own machine'",
             "}",
             "_git-dual () {",
             "\tlocal -a described",
             f"\tif (( CURRENT == 2 )); then described=({described([(e.name, e.summary) for e in tree])}); "
             "_describe -t commands 'git dual command' described; return; fi",
             "\tcase $words[2] in"]
    for name, _, c, members in tree:
        if c is None:
            pairs = described([(m.words[1], m.summary) for m in members])
            lines += [f"\t{name})",
                      f"\t\tif (( CURRENT == 3 )); then described=({pairs}); "
                      f"_describe -t commands 'git dual {name} command' described; return; fi",
                      "\t\tcase $words[3] in"]
            lines += [f"\t\t{m.words[1]}) compadd -- {' '.join(m.options)} ;;" for m in members if m.options]
            lines += ["\t\tesac ;;"]
            continue
        options = f"compadd -- {' '.join(c.options)}" if c.options else ""
        argument = _arguments(c, f"compadd -- ${{(f)\"$({BRANCHES_SH})\"}}", "compadd -- {}", "_command_names -e")
        if options and argument:
            lines.append(f"\t{name}) if [[ $PREFIX == -* ]]; then {options}; else {argument}; fi ;;")
        elif options:
            lines.append(f"\t{name}) [[ $PREFIX == -* ]] && {options} ;;")
        elif argument:
            lines.append(f"\t{name}) {argument} ;;")
    return "\n".join([*lines, "\tesac", "}", ""])


def _fish(cmds: list[Command]) -> str:
    """Completions of `git` under conditions of our own (`__git_dual_at`): fish 3.6's git completion
    means to hand `git dual ...` to those of `git-dual` but looks for `git-dual dual`."""
    lines = ["function __git_dual_at --description 'whether the command line is `git dual` followed by these words'",
             "    set -l words (commandline -opc)",
             "    test (count $words) -eq (math (count $argv) + 2); and test \"$words[2]\" = dual",
             "    and test \"$words[3..]\" = \"$argv\"",
             "end",
             "function __git_dual_in --description 'whether the command line is `git dual` and these words, and more'",
             "    set -l words (commandline -opc)",
             "    set -l last (math (count $argv) + 2)",
             "    test (count $words) -ge $last; and test \"$words[2]\" = dual; and test \"$words[3..$last]\" = \"$argv\"",
             "end",
             "complete -c git -n 'test (count (commandline -opc)) -eq 1' -f -a dual -d 'every git worktree its own machine'",
             *(f"complete -c git -n '__git_dual_at' -f -a {e.name} -d {_fish_quote(e.summary)}" for e in _tree(cmds))]
    for c in cmds:
        if len(c.words) == 2:
            lines.append(f"complete -c git -n '__git_dual_at {c.words[0]}' -f -a {c.words[1]} -d {_fish_quote(c.summary)}")
        words = " ".join(c.words)
        for option in c.options:
            flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            lines.append(f"complete -c git -n '__git_dual_in {words}' {flag}")
        argument = _arguments(c, f"-f -a '({BRANCHES_FISH})'", "-f -a '{}'", "-f -a '(__fish_complete_command)'")
        if argument:
            lines.append(f"complete -c git -n '__git_dual_in {words}' {argument}")
    return "\n".join([*lines, ""])


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
