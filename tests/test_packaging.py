"""A plain `pip install` of dualgit carries every module, the hook templates and the built-in plugins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_regular_install_has_everything(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True)
    for package, source in (("dualgit", ROOT / "dualgit"), ("dualgit_plugins", ROOT / "plugins")):
        wanted = {p.relative_to(source) for p in source.rglob("*.py")}
        got = {p.relative_to(target / package) for p in (target / package).rglob("*.py")}
        assert wanted <= got, f"missing from the install: {sorted(wanted - got)}"
    assert (target / "dualgit_hooks" / "post-checkout").read_text() == (ROOT / "hooks" / "post-checkout").read_text()
    points = next(target.glob("dualgit-*.dist-info")) / "entry_points.txt"
    text = points.read_text()
    for name in ("setup", "shared-files", "cache-dirs", "devcontainer", "image-detect"):
        assert f"{name} = dualgit_plugins." in text
    assert "git-dual = dualgit.main:main" in text
