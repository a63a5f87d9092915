"""devcontainer features, installed into an image built on the worktree's own, as the devcontainers CLI
installs them: each feature's folder (a local one, `./features/x` beside devcontainer.json, or an
OCI artifact fetched from its registry, `ghcr.io/devcontainers/features/go:1`) is copied into a build
context, and its `install.sh` runs as root with its options as upper-cased variables and the
`_REMOTE_USER` family, in the order `dependsOn`, `installsAfter` and `overrideFeatureInstallOrder`
give; its `containerEnv` becomes the image's. The build is `images.build_image`'s, tagged by a hash
of the base image's name, the features' references, options and local files.

OCI features are fetched as the CLI fetches them (the registry's v2 API, anonymous bearer tokens),
into a cache under the user's state dir; a registry on loopback is spoken to over plain HTTP.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from dualgit.background import state_dir
from dualgit.errors import DualgitError
from dualgit.hookspecs import ContainerSettings

METADATA = "devcontainer-feature.json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INSIDE = "/tmp/dev-container-features"  # where the features' folders go in the build, as the CLI puts them


@dataclass(frozen=True)
class Feature:
    ref: str  # as devcontainer.json writes it
    options: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None  # a local feature's folder (absolute); None: an OCI one, fetched


@dataclass(frozen=True)
class FeatureBuild:
    """An image made by installing features on `base` (itself built first, when `base_build` says so)."""

    base: str
    base_build: Any  # images.Build | None
    features: tuple[Feature, ...]
    first: tuple[str, ...] = ()  # overrideFeatureInstallOrder
    users: tuple[str, str] = ("root", "root")  # (remote user, container user)
    source: str = "devcontainer.json"

    @property
    def step(self) -> str:
        return "install features"


def local(ref: str) -> bool:
    return ref.startswith("./") or ref.startswith("../")


def env_name(option: str) -> str:
    """An option's variable, as the spec makes it: non-word characters and leading digits to `_`, upper-cased."""
    return re.sub(r"^[\d_]+", "_", re.sub(r"[^\w]", "_", option)).upper()


def cache_folder(ref: str) -> str:
    return state_dir("features", hashlib.sha256(ref.encode()).hexdigest()[:16])


def folder_of(feature: Feature, fetch_now: bool) -> str | None:
    """A feature's folder on this machine: a local one's, or an OCI one's from the cache (fetched
    first with `fetch_now`; else None when it isn't there yet)."""
    if feature.folder is not None:
        return feature.folder
    cached = cache_folder(feature.ref)
    if os.path.isfile(os.path.join(cached, "install.sh")):
        return cached
    if not fetch_now:
        return None
    fetch(feature.ref, cached)
    return cached


def metadata(folder: str | None) -> dict[str, Any]:
    if folder is None:
        return {}
    try:
        with open(os.path.join(folder, METADATA), encoding="utf-8") as f:
            found = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DualgitError(f"{folder}/{METADATA}: cannot read it ({exc})", hint="fix the feature's metadata")
    return found if isinstance(found, dict) else {}


def split_ref(ref: str) -> tuple[str, str, str]:
    """(registry, repository, tag or digest) of an OCI feature reference."""
    name, digest = (ref.split("@", 1) + [""])[:2]
    tag = ""
    if not digest and ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    registry, _, repository = name.partition("/")
    if not repository or "." not in registry and ":" not in registry and registry != "localhost":
        raise DualgitError(f"feature {ref!r} is neither local (./x) nor in a registry (REGISTRY/NAMESPACE/ID:TAG)",
                           hint="write it as devcontainer.json's features take it, such as "
                                "ghcr.io/devcontainers/features/go:1")
    return registry, repository, digest or tag or "latest"


def fetch(ref: str, into: str) -> None:
    """Fetch an OCI feature's layer (a tar) from its registry and unpack it into `into`."""
    registry, repository, reference = split_ref(ref)
    host = registry.split(":")[0]
    scheme = "http" if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.") else "https"
    base = f"{scheme}://{registry}/v2/{repository}"
    try:
        manifest = json.loads(_get(f"{base}/manifests/{reference}", MEDIA_MANIFEST, repository))
        layers = manifest.get("layers") or []
        if not layers:
            raise DualgitError(f"feature {ref}: its manifest has no layer", hint="check the reference")
        blob = _get(f"{base}/blobs/{layers[0]['digest']}", "*/*", repository)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DualgitError(f"feature {ref} could not be fetched from {registry} ({reason})",
                           hint="check its name and the network, or copy it into the repository and use ./its-folder"
                           ) from None
    if hashlib.sha256(blob).hexdigest() != str(layers[0]["digest"]).removeprefix("sha256:"):
        raise DualgitError(f"feature {ref}: its layer does not match its digest", hint="fetch it again later")
    partial = into + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
        archive.extractall(partial, filter="data")
    shutil.rmtree(into, ignore_errors=True)
    os.rename(partial, into)


def _get(url: str, accept: str, repository: str, token: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept, **({"Authorization": f"Bearer {token}"}
                                                                          if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return bytes(answer.read())
    except urllib.error.HTTPError as exc:
        challenge = exc.headers.get("WWW-Authenticate", "")
        if exc.code != 401 or token is not None or not challenge.lower().startswith("bearer "):
            raise
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = urllib.parse.urlencode({"service": fields.get("service", ""),
                                        "scope": fields.get("scope", f"repository:{repository}:pull")})
        with urllib.request.urlopen(f"{fields['realm']}?{query}", timeout=60) as answer:
            found = json.loads(answer.read())
        return _get(url, accept, repository, str(found.get("token") or found.get("access_token")))


def order(features: list[Feature], metas: dict[str, dict[str, Any]], first: list[str]) -> list[Feature]:
    """Install order: `overrideFeatureInstallOrder`'s first, then each after what it `dependsOn` and
    `installsAfter` (among the features asked for), else in the order written."""
    def key(ref: str) -> str:  # a reference without its version: installsAfter names features so
        return ref if local(ref) else ref.rsplit("@", 1)[0].rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref

    by_key = {key(f.ref): f for f in features}
    after: dict[str, set[str]] = {}
    for f in features:
        meta = metas.get(f.ref, {})
        wanted = [*(meta.get("dependsOn") or {}), *(meta.get("installsAfter") or [])]
        after[key(f.ref)] = {key(w) for w in wanted if key(w) in by_key and key(w) != key(f.ref)}
    placed: list[str] = []
    pending = [key(r) for r in first if key(r) in by_key] + [key(f.ref) for f in features]
    while pending:
        ready = next((k for k in pending if k not in placed and after[k] <= set(placed)), None)
        if ready is None:
            cycle = sorted(k for k in pending if k not in placed)
            raise DualgitError(f"features depend on each other in a cycle: {', '.join(cycle)}",
                               hint="drop one of the dependsOn or installsAfter entries")
        placed.append(ready)
        pending = [k for k in pending if k != ready]
    return [by_key[k] for k in placed]


def runtime(build: FeatureBuild) -> tuple[ContainerSettings, list[str]]:
    """What the features ask of the container itself (their metadata's `privileged`, `capAdd`,
    `securityOpt` and `mounts`, which wait for `git dual allow` as devcontainer.json's do), and
    their entrypoints, which run on every start. Read from the features on this machine: an OCI one
    not fetched yet asks for nothing until its build has fetched it."""
    found = ContainerSettings()
    entrypoints = []
    for feature in build.features:
        meta = metadata(folder_of(feature, fetch_now=False))
        found.privileged = found.privileged or meta.get("privileged") is True
        found.cap_add += [str(c) for c in meta.get("capAdd") or [] if isinstance(c, str)]
        found.security_opt += [str(o) for o in meta.get("securityOpt") or [] if isinstance(o, str)]
        for mount in meta.get("mounts") or []:
            if isinstance(mount, dict) and mount.get("type") == "volume" and mount.get("source") and mount.get("target"):
                found.volumes[f"feature-{mount['source']}"[:60]] = str(mount["target"])
            elif isinstance(mount, dict) and mount.get("source") and mount.get("target"):
                found.binds.append((str(mount["source"]), str(mount["target"]), False))
        if isinstance(meta.get("entrypoint"), str) and meta["entrypoint"]:
            entrypoints.append(str(meta["entrypoint"]))
    return found, entrypoints


def tag(repo: str, base: str, features: list[Feature], users: tuple[str, str]) -> str:
    """The features image's tag: the base's name, the references and options, the users, and every
    local feature's files."""
    from dualgit.naming import dns_label

    digest = hashlib.sha256(json.dumps([base, [[f.ref, f.options] for f in features], users], sort_keys=True).encode())
    for feature in features:
        if feature.folder is None:
            continue
        for root, dirs, files in sorted(os.walk(feature.folder)):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, feature.folder).encode() + b"\0")
                with open(path, "rb") as f:
                    digest.update(f.read())
    return f"dualgit-build/{dns_label(repo)}:f{digest.hexdigest()[:15]}"


def context(base: str, features: list[Feature], first: list[str], users: tuple[str, str], base_user: str = "") -> str:
    """A build context for the features on `base` (fetching OCI ones): each feature's folder as
    N/, and a Dockerfile that installs them in order. Its folder, under the user's state dir."""
    folders = {f.ref: folder_of(f, fetch_now=True) for f in features}
    metas = {ref: metadata(folder) for ref, folder in folders.items()}
    ordered = order(features, metas, first)
    where = state_dir("features", "contexts", hashlib.sha256(json.dumps(
        [base, [[f.ref, f.options] for f in ordered], users], sort_keys=True).encode()).hexdigest()[:16])
    shutil.rmtree(where, ignore_errors=True)
    os.makedirs(where)
    remote, container = users
    lines = [f"FROM {base}", "USER root"]
    for number, feature in enumerate(ordered):
        source, meta = folders[feature.ref], metas[feature.ref]
        assert source is not None
        if not os.path.isfile(os.path.join(source, "install.sh")):
            raise DualgitError(f"feature {feature.ref} has no install.sh", hint="a feature's folder holds install.sh "
                               f"and {METADATA}")
        shutil.copytree(source, os.path.join(where, str(number)))
        options = {name: spec.get("default") for name, spec in (meta.get("options") or {}).items()
                   if isinstance(spec, dict) and "default" in spec}
        options.update(feature.options)
        variables = {env_name(k): _text(v) for k, v in options.items()}
        variables.update({"_REMOTE_USER": remote, "_REMOTE_USER_HOME": _home(remote),
                          "_CONTAINER_USER": container, "_CONTAINER_USER_HOME": _home(container)})
        with open(os.path.join(where, str(number), "devcontainer-features.env"), "w") as f:
            f.writelines(f"{k}={json.dumps(v)}\n" for k, v in variables.items())
        inside = f"{INSIDE}/{number}"
        lines.append(f"COPY {number}/ {inside}/")
        lines.append(f"RUN cd {inside} && chmod +x install.sh && set -a && . ./devcontainer-features.env && set +a "
                     f"&& ./install.sh")
        env = meta.get("containerEnv") or {}
        if isinstance(env, dict) and env:
            lines.append("ENV " + " ".join(f"{k}={json.dumps(str(v))}" for k, v in env.items()))
    if base_user and base_user not in ("root", "0", "0:0"):
        lines.append(f"USER {base_user}")  # as the base image had it
    with open(os.path.join(where, "Dockerfile"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return where


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _home(user: str) -> str:
    return "/root" if user == "root" else f"/home/{user}"
