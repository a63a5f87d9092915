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
    from dualgit.config.compose import unused_files

    for name in unused_files(where, list(config.load(where).compose)):
        print(f"found {name}: its services run in each branch once opted in: `git dual config add compose {name}`")
    return 0
