"""The label namespace that marks what dualgit owns. Nothing without `dualgit.repo` is ever touched."""

from __future__ import annotations

REPO = "dualgit.repo"  # the repository's common git dir, on every object dualgit creates
WORKTREE = "dualgit.worktree"  # the worktree's absolute path, on containers and their volumes
GITDIR = "dualgit.gitdir"  # the worktree's admin dir: it stays put through `git worktree move`
SPEC = "dualgit.spec"  # a hash of what the container was made from; a change means recreate
PORTS = "dualgit.ports"  # the HTTP ports it declares, comma-separated: the proxy listens on these
TCP_PORTS = "dualgit.tcp_ports"  # the raw TCP ports it declares
PORT_LABELS = "dualgit.port_labels"  # JSON: a port -> what it is (devcontainer.json's portsAttributes' label)
AGENT = "dualgit.agent"  # "1": its main process is the agent (`agent.sh`): relays, listeners, `serve`
SERVICES = "dualgit.services"  # on a branch's container: its services' names, comma-separated
SERVICE = "dualgit.service"  # on a service's container and volumes: the service's name (`[services.NAME]`)
SERVICE_OF = "dualgit.service_of"  # on a service's container: the worktree whose branch it serves
SERVICE_FILES = "dualgit.service_files"  # on a synced engine: the digest of the binds copied into it
VOLUME = "dualgit.volume"  # on a service's volume: its key (`volumes = { KEY = PATH }`)
HELPER = "dualgit.helper"  # on a short-lived container of dualgit's own (a seed's copy): what it does
SYNC = "dualgit.sync"  # "1" on a branch's container whose worktree is synced to its engine (`sync.py`); on the
# sync helper (HELPER "sync"): the version of the unison it carries
STATE = "dualgit.state"  # the state folder of the dualgit that made it: whose proxy serves it (one per user)


def filters(repo: str | None, worktree: str | None = None) -> dict[str, list[str]]:
    """The engine's `filters` argument that selects one repository's objects (or one worktree's,
    or with no repository, every dualgit object)."""
    wanted = [f"{REPO}={repo}" if repo is not None else REPO]
    if worktree is not None:
        wanted.append(f"{WORKTREE}={worktree}")
    return {"label": wanted}


def service(labels: dict[str, str] | None) -> bool:
    """Whether an object is a branch's service's (not the branch's own container)."""
    return bool(labels) and (SERVICE in labels or HELPER in labels)  # type: ignore[operator]


def mine(labels: dict[str, str] | None, state: str) -> bool:
    """Whether a container is this user's to list and serve: made under `state` (this dualgit's
    state folder), or before containers said which. An engine may be shared by users, each with a
    proxy of their own, and by the test suite's throwaway homes."""
    made_under = (labels or {}).get(STATE)
    return made_under is None or made_under == state


def owned(labels: dict[str, str] | None, repo: str) -> bool:
    return bool(labels) and labels.get(REPO) == repo  # type: ignore[union-attr]
