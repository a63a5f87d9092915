"""What the proxy watches besides requests: the engine's event stream (each event, a refresh of the
host table) and each repository's `worktrees/` folder (a worktree removed, its container reaped
within a second or two, with no command run)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dualgit.errors import DualgitError
from dualgit.proxy.say import log
from dualgit.worktrees import labels

if TYPE_CHECKING:
    from dualgit.engine.interface import Engine

WATCH_EVERY = 0.5  # seconds between looks at each repository's worktrees/ folder


def watch_events(api: Engine, stopping: asyncio.Event, loop: asyncio.AbstractEventLoop,
                 refresh: Callable[[], None], engine_down: Callable[[str], None]) -> threading.Thread:
    """A thread: the engine's event stream for dualgit containers; each event, a `refresh` (on the
    loop). An engine that stops answering is told to `engine_down`, and tried again, backing off."""
    def run() -> None:
        delay = 0.5
        while not stopping.is_set():
            try:
                for _event in api.events({"type": ["container"], "label": [labels.REPO]}):
                    delay = 0.5
                    loop.call_soon_threadsafe(refresh)
            except (OSError, DualgitError) as exc:
                loop.call_soon_threadsafe(engine_down, str(exc))
            time.sleep(delay)
            delay = min(delay * 2, 10)
            loop.call_soon_threadsafe(refresh)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


async def watch_worktrees(api: Engine, stopping: asyncio.Event, repos: Callable[[], set[str]]) -> None:
    """Every WATCH_EVERY seconds, each repository's `worktrees/` folder: when it changed, reap."""
    watched: dict[str, float] = {}
    while not stopping.is_set():
        for repo in sorted(repos()):
            try:
                stamp = os.stat(os.path.join(repo, "worktrees")).st_mtime
            except OSError:
                stamp = 0.0
            if watched.setdefault(repo, stamp) != stamp:
                watched[repo] = stamp
                await asyncio.get_running_loop().run_in_executor(None, reap, api, repo)
        await asyncio.sleep(WATCH_EVERY)


def reap(api: Engine, repo_dir: str) -> None:
    """Remove the containers of this repository's removed worktrees."""
    from dualgit.git import repository
    from dualgit.worktrees.reconcile import reconcile

    try:
        for action in reconcile(repository.open_repo(repo_dir), api):
            log(action.describe())
    except DualgitError as exc:
        log(f"reconcile {repo_dir}: {exc.message}")
