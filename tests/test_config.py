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
