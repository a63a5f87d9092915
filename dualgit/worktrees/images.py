"""A worktree's image on the engine: its id, pulled first when it is not here."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine


class ImageNotHere(DualgitError):
    """The image is not on this machine, and the caller would not wait for a pull (the hook: git
    waits for its hooks, and a pull can take minutes)."""

    def __init__(self, image: str) -> None:
        super().__init__(f"image {image} is not on this machine")
        self.image = image


def image_id(api: Engine, image: str, pull: bool = True) -> str:
    """The local image's id; pulled first when it isn't here (said on stderr: it can take minutes)."""
    try:
        return str(api.inspect_image(image)["Id"])
    except ApiError as exc:
        if exc.status != 404:
            raise DualgitError(f"cannot inspect image {image}: {exc.message}")
    if not pull:
        raise ImageNotHere(image)
    print(f"dualgit: pulling {image} (not on this machine) ...", file=sys.stderr, flush=True)
    reason = _pull(api, image)
    try:
        return str(api.inspect_image(image)["Id"])
    except ApiError:
        raise DualgitError(
            f"image {image} is not on this machine and could not be pulled ({reason})",
            hint=f"build it (`docker build -t {image} .`) or pull it (`docker pull {image}`), "
            "or name another: `git dual config set image NAME` "
            "(`scripts/setup` builds busybox:latest and dualgit/debian:bookworm)",
        ) from None


def _pull(api: Engine, image: str) -> str:
    name, tag = image, "latest"
    if "@" not in image and ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    from dualgit.engine.dockerpy import DockerPy  # pulls are docker-py's: registry auth, its progress stream

    try:
        DockerPy(api.endpoint, timeout=600).pull(name, tag)
    except ApiError as exc:
        return exc.message
    return "no error given"
