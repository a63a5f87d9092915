from __future__ import annotations

from pathlib import Path

import pytest

from dualgit.config import TEMPLATE, Config, load, parse, write_template
from dualgit.errors import DualgitError


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert load(str(tmp_path)) == Config()
    assert Config().image is None and Config().ports == (3000,)  # None: plugins choose


def test_template_parses_and_says_the_defaults(tmp_path: Path) -> None:
    written = write_template(str(tmp_path))
    config = load(str(tmp_path))
    assert (config.image, config.ports, config.env, config.strict) == (None, (3000,), {}, False)
    assert config.source == written
    assert "# " in Path(written).read_text()


def test_template_keeps_an_existing_file_unless_forced(tmp_path: Path) -> None:
    (tmp_path / ".dual.toml").write_text("image = 'x'\n")
    assert write_template(str(tmp_path)) is None
    assert (tmp_path / ".dual.toml").read_text() == "image = 'x'\n"
    assert write_template(str(tmp_path), force=True) == str(tmp_path / ".dual.toml")
    assert (tmp_path / ".dual.toml").read_text() == TEMPLATE


def test_values() -> None:
    config = parse('image = "dualgit/debian:bookworm"\nports = [5173, "8080", 5173]\n[env]\nA = 1\nB = true\n')
    assert config.image == "dualgit/debian:bookworm"
    assert config.ports == (5173, 8080)
    assert config.env == {"A": "1", "B": "true"}


def test_malformed_names_file_line_and_column() -> None:
    with pytest.raises(DualgitError) as caught:
        parse('image = "busybox"\nports = [3000\nenv = 1\n', "/w/.dual.toml")
    assert caught.value.message.startswith("/w/.dual.toml:3:")
    assert "line 3" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "text, key",
    [("ports = 3000", "ports"), ("ports = [0]", "ports"), ("image = ''", "image"), ("env = 'x'", "env"),
     ("strict = 'yes'", "strict"), ("[env]\nA = [1]", "env.A")],
)
def test_wrong_types_name_the_key(text: str, key: str) -> None:
    with pytest.raises(DualgitError, match=f"`{key}` must be"):
        parse(text, "f.toml")


def test_unknown_key_warns_with_closest(capsys: pytest.CaptureFixture[str]) -> None:
    parse('imgae = "x"\n', "f.toml")
    assert "unknown key `imgae` (did you mean `image`?)" in capsys.readouterr().err


def test_files_and_remote_only_are_checked() -> None:
    config = parse('files = "sync"\nremote_only = ["node_modules", "/build/cache/"]\n', "x.toml")
    assert (config.files, config.remote_only) == ("sync", ("node_modules", "build/cache"))
    with pytest.raises(DualgitError) as wrong:
        parse('ports = [3000]\nfiles = "rsync"\n', "x.toml")
    assert wrong.value.message.startswith("x.toml:2:9: `files` must be") and '"sync"' in wrong.value.message
    with pytest.raises(DualgitError) as outside:
        parse('remote_only = ["../elsewhere"]\n', "x.toml")
    assert outside.value.message.startswith("x.toml:1:") and "remote_only" in outside.value.message


def test_engine_names_and_rules_are_read_and_the_repository_names_no_address(tmp_path: Path) -> None:
    from dualgit.config import EngineRule, parse_user
    from dualgit.git.locate import Location
    from dualgit.worktrees.engines import wanted

    assert parse('engine = "devbox"\n').engine == "devbox"
    with pytest.raises(DualgitError) as raised:
        parse('ports = [3000]\nengine = "ssh://me@devbox"\n', "w/.dual.toml")
    assert raised.value.message.startswith("w/.dual.toml:2:10: `engine` names an address (ssh://me@devbox)")
    assert "docker context create NAME --docker host=ssh://me@devbox" in (raised.value.hint or "")
    with pytest.raises(DualgitError, match="`engine` must be"):
        parse('engine = "two words"\n')
    user = parse_user('engine = "tcp://10.0.0.5:2376"\n[[engines]]\nrepo = "shop"\nbranch = "feat/heavy-*"\n'
                      'engine = "ssh://me@devbox"\n[[engines]]\nbranch = "ci/*"\nengine = "ci"\n', "u.toml")
    assert user.engine == "tcp://10.0.0.5:2376"
    assert user.engines == (EngineRule("ssh://me@devbox", "shop", "feat/heavy-*"), EngineRule("ci", None, "ci/*"))
    for bad in ('[[engines]]\nbranch = "x"\n', '[[engines]]\nengine = "a"\nwhere = "b"\n', 'engines = "devbox"\n',
                '[[engines]]\nengine = "ftp://x"\n'):
        with pytest.raises(DualgitError, match="engines"):
            parse_user(bad, "u.toml")

    shop = Location(str(tmp_path / "shop-heavy"), str(tmp_path / "shop/.git/worktrees/x"), str(tmp_path / "shop/.git"))
    other = Location(str(tmp_path / "blog-heavy"), str(tmp_path / "blog/.git/worktrees/x"), str(tmp_path / "blog/.git"))
    named = parse('engine = "laptop"\n')
    # the user's rules first, then the branch's file, then the user's engine, else the default
    assert wanted(shop, named, user, "feat/heavy-db") == "ssh://me@devbox"
    assert wanted(other, named, user, "feat/heavy-db") == "laptop"
    assert wanted(other, Config(), user, "ci/nightly") == "ci"
    assert wanted(other, Config(), user, "main") == "tcp://10.0.0.5:2376"
    assert wanted(other, Config(), parse_user("", "u.toml"), "main") == "default"
    assert wanted(shop, Config(), user, None) == "tcp://10.0.0.5:2376"  # detached: no branch rule matches
