from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from dualgit.naming import container_name, dns_label, repo_name, slug

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
HOSTILE = ["feat/a", "feat-a", "x" * 250, "ünïcødé-分支", "$(touch pwned)", "a;rm -rf ~", "..", "...", "-", " ", "A" * 63]


def test_names_are_valid_short_and_distinct_for_hostile_folders() -> None:
    names = {container_name("/r/demo/.git", f"/r/{folder}") for folder in HOSTILE}
    assert len(names) == len(HOSTILE)
    for name in names:
        assert DOCKER_NAME.match(name), name
        assert len(name) <= 63


def test_colliding_slugs_get_distinct_names() -> None:
    assert slug("feat/a") == slug("feat-a")
    assert container_name("/r/.git", "/r/feat/a") != container_name("/r/.git", "/r/feat-a")


def test_name_is_readable() -> None:
    assert container_name("/src/My Repo/.git", "/src/my-repo-feat") .startswith("dual-my-repo-my-repo-feat-")


@given(st.text(min_size=0, max_size=300), st.text(min_size=0, max_size=300))
def test_any_path_gives_a_valid_name(repo: str, folder: str) -> None:
    name = container_name(f"/x/{repo}/.git", f"/x/{folder}")
    assert DOCKER_NAME.match(name) and len(name) <= 63


def test_repo_name_from_common_dir() -> None:
    assert repo_name("/src/shop/.git") == "shop"
    assert repo_name("/srv/shop.git") == "shop"


def test_dns_label_rule() -> None:
    assert dns_label("Feat/Auth") == "feat-auth"
    long = dns_label("b" * 100)
    assert len(long) <= 63 and long != dns_label("b" * 101)
    assert dns_label("feat-a", taken=True) != "feat-a"
    assert re.match(r"^[a-z0-9]{6}$", dns_label("分支"))


@given(st.text(max_size=200))
def test_dns_label_fits(text: str) -> None:
    label = dns_label(text)
    assert 1 <= len(label) <= 63 and re.match(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", label)
