"""A plain `pip install` of dualgit carries every module, the hook templates and the built-in plugins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent


def test_a_regular_install_has_everything(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True)
    for package, source in (("dualgit", ROOT / "dualgit"), ("dualgit_plugins", ROOT / "plugins"),
                            ("dualgit_hooks", ROOT / "hooks")):
        wanted = {p.relative_to(source) for p in source.rglob("*.py")}
        got = {p.relative_to(target / package) for p in (target / package).rglob("*.py")}
        assert wanted <= got, f"missing from the install: {sorted(wanted - got)}"
    assert (target / "dualgit_hooks" / "post-checkout").read_text() == (ROOT / "hooks" / "post-checkout").read_text()
    points = next(target.glob("dualgit-*.dist-info")) / "entry_points.txt"
    text = points.read_text()
    for name in ("setup", "shared-files", "cache-dirs", "devcontainer", "image-detect"):
        assert f"{name} = dualgit_plugins." in text
    assert "git-dual = dualgit.cli.main:main" in text
    assert (target / "share" / "man" / "man1" / "git-dual.1").read_text() == (ROOT / "man" / "git-dual.1").read_text()


def test_the_manual_page_is_made_from_the_commands_help() -> None:
    from dualgit.cli.manpage import render

    assert (ROOT / "man" / "git-dual.1").read_text() == render(), "run: python -m dualgit.cli.manpage > man/git-dual.1"


@pytest.mark.skipif(not shutil.which("man") and not IN_CI, reason="`git dual --help` is git's `man git-dual`: no man here")
def test_git_dual_help_shows_the_manual_page_and_h_the_usage(tmp_path: Path) -> None:
    env = {**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100"}
    shown = subprocess.run(["git", "dual", "--help"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "git-dual - every git worktree its own machine" in shown.stdout
    assert "Usage: git dual rm [OPTIONS] [BRANCH|PATH]..." in shown.stdout
    assert "usage: git dual exec [-e KEY=VALUE]... [--root] [--no-wait] [--service NAME] [--] COMMAND [ARG]..." in shown.stdout
    for args in (["-h"], ["rm", "-h"], ["proxy", "status", "-h"]):
        short = subprocess.run(["git", "dual", *args], cwd=tmp_path, capture_output=True, text=True)
        assert short.returncode == 0 and short.stdout.startswith(f"Usage: git dual {' '.join(args[:-1])}".rstrip())
