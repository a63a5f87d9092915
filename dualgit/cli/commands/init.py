"""`git dual init`: a commented `.dual.toml`, and the hooks."""

from __future__ import annotations

from dualgit import config
from dualgit.git import repository
from dualgit.githooks import install


def init(force: bool = False, folder: str | None = None) -> int:
    repo = repository.open_repo(folder)
    where = repo.workdir or "."
    written = config.write_template(where, force)
    if written is None:
        print(f"kept {config.FILENAME}: it is there already (`git dual init --force` replaces it with the template)")
    else:
        print(f"wrote {written}")
    for line in install.install(repo):
        print(line)
    return 0
