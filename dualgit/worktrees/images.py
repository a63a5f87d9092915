"""A worktree's image on the engine: its id, pulled first when it is not here."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dualgit.engine.api import ApiError
from dualgit.errors import DualgitError
from dualgit.naming import dns_label

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine
    from dualgit.worktrees.features import FeatureBuild


class ImageNotHere(DualgitError):
    """The image is not on this machine, and the caller would not wait for a pull (the hook: git
    waits for its hooks, and a pull can take minutes)."""

    def __init__(self, image: str, step: str = "") -> None:
        super().__init__(f"image {image} is not on this machine")
        self.image = image
        self.step = step or f"pull {image}"  # what the background runner does about it, as `ls` says it


def image_id(api: Engine, image: str, pull: bool = True, build: Build | FeatureBuild | None = None,
             worktree: str = "") -> str:
    """The local image's id; pulled (or with `build`, built) first when it isn't here (said on
    stderr: it can take minutes)."""
    try:
        return str(api.inspect_image(image)["Id"])
    except ApiError as exc:
        if exc.status != 404:
            raise DualgitError(f"cannot inspect image {image}: {exc.message}")
    if not pull:
        raise ImageNotHere(image, build.step if build else "")
    if build is not None:
        return build_image(api, worktree, build, image)
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


# Builds: an image made from a Dockerfile, tagged by a hash of everything it is built from, so that
# branches with the same inputs share one image, and a branch whose inputs have an image builds nothing.

BUILD_REPO = "dualgit-build"  # the tags' repository: dualgit-build/<repo>:<hash of the inputs>
BUILD_LABEL = "dualgit.build"  # on the images dualgit builds: the Dockerfile, relative to the worktree


@dataclass(frozen=True)
class Build:
    """A Dockerfile build, its paths relative to the worktree, as .dual.toml or devcontainer.json gave it."""

    dockerfile: str
    context: str = "."
    args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    source: str = ".dual.toml"  # the file that asked for it

    @property
    def step(self) -> str:
        return f"build {self.dockerfile}"

    def as_data(self) -> dict[str, Any]:
        return {"dockerfile": self.dockerfile, "context": self.context, "args": dict(self.args), "target": self.target}


def build_tag(worktree: str, repo: str, build: Build) -> str:
    """The tag for `build`'s inputs in `worktree`: the Dockerfile, the context's files (as the
    .dockerignore leaves them), the args and the target. Reads the files; no engine call."""

    context = os.path.join(worktree, build.context)
    dockerfile = os.path.join(worktree, build.dockerfile)
    if not os.path.isdir(context):
        raise DualgitError(f"{build.source}: the build context {build.context} is not a folder",
                           hint="give a folder of the worktree as the build's context")
    try:
        with open(dockerfile, "rb") as f:
            digest = hashlib.sha256(f.read())
    except OSError as exc:
        raise DualgitError(f"{build.source}: cannot read the Dockerfile {build.dockerfile} ({exc.strerror})",
                           hint="give the path of a Dockerfile in the worktree") from None
    digest.update(json.dumps([build.args, build.target], sort_keys=True).encode())
    for name in context_files(context, dockerfile):
        path = os.path.join(context, name)
        digest.update(b"\0" + name.encode("utf-8", "surrogateescape") + b"\0")
        if os.path.islink(path):
            digest.update(b"L" + os.readlink(path).encode("utf-8", "surrogateescape"))
        elif os.path.isfile(path):
            digest.update(b"X" if os.access(path, os.X_OK) else b"F")
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
    return f"{BUILD_REPO}/{dns_label(repo)}:{digest.hexdigest()[:16]}"


def context_files(context: str, dockerfile: str) -> list[str]:
    """The files (and folders) of the build's context that go to the engine, sorted: what its
    .dockerignore leaves, less `.git` (a linked worktree's names its own admin dir, so the same
    inputs on two branches would never share an image; the devcontainers CLI sends it)."""
    from dualgit.worktrees.dockerignore import files

    return files(context, os.path.relpath(dockerfile, context), [".git"])


def build_image(api: Engine, worktree: str, build: Build | FeatureBuild, tag: str) -> str:
    """Build `tag` unless it is here (another branch's build of the same inputs is waited for, not
    repeated); its id. The builder's output goes to stdout (the setup log, in the background)."""
    import fcntl

    from dualgit.background import state_dir
    from dualgit.engine.dockerpy import DockerPy

    lock_file = state_dir("builds", hashlib.sha256(tag.encode()).hexdigest()[:16] + ".lock")
    os.makedirs(os.path.dirname(lock_file), exist_ok=True)
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return str(api.inspect_image(tag)["Id"])
        except ApiError:
            pass
        if isinstance(build, Build):
            print(f"dualgit: building {tag} from {build.dockerfile} ({build.source}) ...", file=sys.stderr, flush=True)
            context = os.path.join(worktree, build.context)
            dockerfile = os.path.join(worktree, build.dockerfile)
            args, target, label = build.args, build.target, build.dockerfile
        else:
            from dualgit.worktrees import features

            base_id = image_id(api, build.base, True, build.base_build, worktree)
            base_user = str((api.inspect_image(base_id).get("Config") or {}).get("User") or "")
            print(f"dualgit: installing {len(build.features)} features on {build.base} as {tag} ...", file=sys.stderr,
                  flush=True)
            context = features.context(build.base, list(build.features), list(build.first), build.users, base_user)
            dockerfile = os.path.join(context, "Dockerfile")
            args, target, label = {}, None, "features"
        steps: list[str] = []
        try:
            for line in DockerPy(api.endpoint, timeout=3600).build(
                    context_tar(context, dockerfile), _in_tar(context, dockerfile), tag, args, target, {BUILD_LABEL: label}):
                if line.startswith(("Step ", "STEP ")) or (line.startswith("#") and " ERROR: " not in line and " [" in line[:8]):
                    steps.append(line)  # the classic builder's `Step 3/5 : ...`, BuildKit's `#7 [3/5] RUN ...`
                elif line.startswith("#") and " ERROR: " in line:  # BuildKit names the one that failed
                    number = line.split(" ", 1)[0] + " "
                    steps += [step for step in steps if step.startswith(number)][:1]
                print(line, end="", file=sys.stderr, flush=True)
        except ApiError as exc:
            where = _failed_line(dockerfile, steps[-1] if steps else "")
            what = build.dockerfile if isinstance(build, Build) else f"installing features ({dockerfile})"
            raise DualgitError(f"{what}{where}: the build failed: {exc.message}",
                               hint="fix it, then `git dual up` builds it again (`git dual logs` has the whole output)"
                               ) from None
        return str(api.inspect_image(tag)["Id"])


OUTSIDE = ".dualgit.Dockerfile"  # the Dockerfile's name in the tar when it lies outside the context


def _in_tar(context: str, dockerfile: str) -> str:
    inside = os.path.relpath(dockerfile, context)
    return OUTSIDE if inside.startswith("..") else inside


def context_tar(context: str, dockerfile: str) -> Any:
    """The build's context as the engine gets it: a tar of `context_files`, with the Dockerfile
    added when it lies outside the context. GNU format: BuildKit takes a PAX header at the front of
    a remote context for a Dockerfile of its own. A temporary file, read from its start."""
    import tarfile
    import tempfile

    out = tempfile.NamedTemporaryFile()  # noqa: SIM115 - the engine client reads it, then it goes
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name in context_files(context, dockerfile):
            path = os.path.join(context, name)
            info = archive.gettarinfo(path, arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with open(path, "rb") as f:
                    archive.addfile(info, f)
            else:
                archive.addfile(info)
        if _in_tar(context, dockerfile) == OUTSIDE:
            info = archive.gettarinfo(dockerfile, arcname=OUTSIDE)
            with open(dockerfile, "rb") as f:
                archive.addfile(info, f)
    out.seek(0)
    return out


def _failed_line(dockerfile: str, step: str) -> str:
    """`:LINE` of the Dockerfile instruction the builder's last step line names: the classic
    builder's `Step N/M : ...` (N counted over the file), or BuildKit's `#K [STAGE N/M] ...` (N
    counted within the stage, its FROM first; STAGE a name given with AS, or stage-I)."""
    import re

    classic = re.match(r"(?:Step|STEP) (\d+)/\d+ ?: ", step)  # Docker's classic builder; Podman's (buildah)
    kit = re.match(r"#\d+ \[(?:(\S+) )?(\d+)/\d+\] ", step)
    if not classic and not kit:
        return ""
    try:
        with open(dockerfile, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    instructions = []  # (line number, text) of each instruction, continuation lines joined
    continued = False
    for line_no, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not continued:
            instructions.append((line_no, stripped))
        continued = stripped.endswith("\\")
    if classic:
        wanted = int(classic[1])
        return f":{instructions[wanted - 1][0]}" if 0 < wanted <= len(instructions) else ""
    assert kit is not None
    stage, wanted = kit[1], int(kit[2])
    starts = [i for i, (_n, text) in enumerate(instructions) if text.upper().startswith("FROM ")]
    index = 0
    if stage:
        named = [i for i in starts if re.search(rf"\s+AS\s+{re.escape(stage)}\s*$", instructions[i][1], re.IGNORECASE)]
        if named:
            index = starts.index(named[0])
        elif stage.startswith("stage-") and stage[6:].isdigit():
            index = int(stage[6:])
    if index >= len(starts):
        return ""
    end = starts[index + 1] if index + 1 < len(starts) else len(instructions)
    counted = [n for n, text in instructions[starts[index]:end] if text.split()[0].upper() in STEPS]  # BuildKit's
    return f":{counted[wanted - 1]}" if 0 < wanted <= len(counted) else ""


STEPS = {"FROM", "RUN", "COPY", "ADD", "WORKDIR"}  # the instructions BuildKit numbers; the rest set metadata
