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


def test_locate_agrees_with_pygit2_from_a_subfolder(repo: Path) -> None:
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
