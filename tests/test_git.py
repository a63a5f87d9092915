from __future__ import annotations

from pathlib import Path

import pytest

from conftest import add_worktree, git
from dualgit.errors import DualgitError
from dualgit.git import repository
from dualgit.git.locate import locate


def test_finds_main_and_linked_worktrees(repo: Path) -> None:
    feat = add_worktree(repo, "demo-feat", "feat/auth")
    info = repository.open_repo(str(feat / "."))
    assert info.common_dir == str((repo / ".git").resolve())
    assert info.name == "demo"
    assert info.workdir == str(feat)
    trees = repository.worktrees(info)
    assert [(t.path, t.branch, t.main) for t in trees] == [
        (str(repo.resolve()), "main", True),
        (str(feat), "feat/auth", False),
    ]


def test_branch_is_read_live_and_detached_is_handled(repo: Path) -> None:
    feat = add_worktree(repo, "demo-feat", "feat/a")
    git("switch", "-q", "-c", "other", cwd=feat)
    assert repository.worktrees(repository.open_repo(str(repo)))[1].branch == "other"
    git("checkout", "-q", "--detach", cwd=feat)
    wt = repository.worktrees(repository.open_repo(str(repo)))[1]
    assert wt.branch is None and wt.label.startswith("(detached ")


def test_locate_agrees_with_the_worktree_list_from_a_subfolder(repo: Path) -> None:
    feat = add_worktree(repo, "demo-feat", "feat/a")
    (feat / "sub" / "deeper").mkdir(parents=True)
    loc = locate(str(feat / "sub" / "deeper"))
    wt = repository.worktrees(repository.open_repo(str(repo)))[1]
    assert loc == wt.location


def test_outside_a_repository(tmp_path: Path) -> None:
    with pytest.raises(DualgitError, match="is not inside a git repository"):
        repository.open_repo(str(tmp_path))
    with pytest.raises(DualgitError, match="is not inside a git repository"):
        locate(str(tmp_path))


def test_find_worktree_by_path_or_branch(repo: Path) -> None:
    feat = add_worktree(repo, "demo-feat", "feat/a")
    info = repository.open_repo(str(repo))
    assert repository.find_worktree(info, "feat/a").path == str(feat)
    assert repository.find_worktree(info, str(feat)).branch == "feat/a"
    with pytest.raises(DualgitError, match="no worktree"):
        repository.find_worktree(info, "nope")


def test_locked_worktree_is_reported(repo: Path) -> None:
    feat = add_worktree(repo, "demo-feat", "feat/a")
    git("worktree", "lock", str(feat), cwd=repo)
    assert repository.worktrees(repository.open_repo(str(repo)))[1].locked


def _git_says(folder: Path) -> list[tuple[str, str | None, bool]]:
    """git's own worktree list: (path, branch, locked), bare entries left out."""
    found: list[tuple[str, str | None, bool]] = []
    for block in git("worktree", "list", "--porcelain", cwd=folder).strip().split("\n\n"):
        lines = block.splitlines()
        if "bare" in lines:
            continue
        branch = next((line[len("branch refs/heads/"):] for line in lines if line.startswith("branch ")), None)
        locked = any(line == "locked" or line.startswith("locked ") for line in lines)
        found.append((str(Path(lines[0][len("worktree "):]).resolve()), branch, locked))
    return found


def test_the_worktree_list_is_gits_own(repo: Path, tmp_path: Path) -> None:
    """Read from git's files, the list agrees with `git worktree list`: linked, locked, detached,
    moved away from under git (still registered), and in a bare repository with worktrees."""
    add_worktree(repo, "demo-a", "a")
    locked = add_worktree(repo, "demo-locked", "locked")
    git("worktree", "lock", str(locked), cwd=repo)
    detached = add_worktree(repo, "demo-detached", "d")
    git("checkout", "-q", "--detach", cwd=detached)
    gone = add_worktree(repo, "demo-gone", "gone")
    gone.rename(tmp_path / "elsewhere")  # not through git: git still lists it where it was
    bare = tmp_path / "bare.git"
    git("clone", "-q", "--bare", str(repo), str(bare), cwd=tmp_path)
    git("worktree", "add", "-q", str(tmp_path / "from-bare"), "-b", "from-bare", cwd=bare)
    for folder in (repo, detached, bare, tmp_path / "from-bare", bare / "refs"):
        opened = repository.open_repo(str(folder))
        ours = [(wt.path, wt.branch, wt.locked) for wt in repository.worktrees(opened)]
        assert sorted(ours) == sorted(_git_says(folder)), folder  # git sorts linked ones by path, we by name
    assert repository.open_repo(str(bare)).workdir is None
    assert repository.open_repo(str(repo / ".git")).workdir == str(repo.resolve())
