"""Setup in the background: the steps plugins register, run in order after a container is made.

The hook (or command) that made the container spawns `git dual setup-run WORKTREE` detached and
returns; the runner holds the worktree's lock while it works, so a step never runs twice at once
for the same worktree, and records where it stands (`setup_state`)."""

from __future__ import annotations

import os
import subprocess
import time
import traceback

from dualgit.background import DUALGIT
from dualgit.errors import DualgitError
from dualgit.git.locate import Location, locate
from dualgit.hookspecs import Context, Step, hookimpl
from dualgit.naming import container_name
from dualgit.worktrees import agent, engines, setup_state, state
from dualgit.worktrees.plan import steps_for
from dualgit.worktrees.setup_state import SETUP_CONTAINER


def _create(loc: Location) -> int:
    """`setup-run --create`: make the container (pulling its image), whose own runner then sets it
    up once this one lets go of the lock. A failure is recorded as a failed `pull` step, with no
    container id: the next `git dual up` or `exec` tries again in the foreground."""
    from dualgit.engine.dockerpy import DockerPy
    from dualgit.worktrees.containers import ensure_running

    name = container_name(loc.common_dir, loc.worktree)
    with setup_state.runner(name).hold_when_free():
        step = setup_state.read(name).step or "pull"
        try:
            ensure_running(loc, api=engines.one(name, DockerPy))
        except DualgitError as exc:
            setup_state.write(name, "failed", "", step)
            print(exc.render(), flush=True)
            return 1
    return 0


def run(args: list[str]) -> int:
    """`git dual setup-run WORKTREE [--force|--create]`: what the background runner does."""
    from dualgit.engine.dockerpy import DockerPy
    from dualgit.plugins import plugins
    from dualgit.worktrees.inventory import list_containers
    from dualgit.worktrees.plan import context_for

    force = "--force" in args
    worktree = next((a for a in args if not a.startswith("--")), ".")
    loc = locate(worktree)
    if "--create" in args:
        return _create(loc)
    current = list_containers(engines.one(container_name(loc.common_dir, loc.worktree), DockerPy), loc.common_dir,
                              loc.worktree)
    if not current:
        print("dualgit: no container for this worktree; nothing to set up", flush=True)
        return 1
    container = current[0]
    with setup_state.runner(container.name).hold_when_free():  # a second runner waits here for the first
        before = setup_state.read(container.name)
        if not force and before.status == "done" and before.container_id == container.id:
            return 0  # another runner did it while we waited
        ctx = context_for(loc, container.name)
        if container.synced:
            setup_state.write(container.name, "running", container.id, "sync")
            print("==> sync (the worktree's files to its engine)", flush=True)
            stuck = state.wait_for_sync(container.name)
            if stuck is not None:
                setup_state.write(container.name, "failed", container.id, "sync")
                print(f"==> sync failed: {stuck}", flush=True)
                return 1
        if container.services and not _services(loc, ctx, container.name, container.id):
            return 1
        runner = Runner(ctx, container.name, container.id)
        pm = plugins().pm
        pm.register(runner, name="dualgit-setup-runner")
        try:
            plugins().call("dualgit_setup", ctx=ctx)
        except StepFailed as exc:
            setup_state.write(container.name, "failed", container.id, exc.step)
            print(f"==> setup failed at: {exc.step}", flush=True)
            return 1
        except DualgitError as exc:
            setup_state.write(container.name, "failed", container.id, runner.current or "setup")
            print(f"==> setup failed: {exc.message}", flush=True)
            return 1
        finally:
            pm.unregister(runner)
        setup_state.write(container.name, "done", container.id)
        try:
            agent.setup_done(container.name, True)  # its `serve` starts now
        except DualgitError as exc:
            print(f"==> serve does not start: {exc.message}", flush=True)
        print(f"==> setup done ({len(runner.ran)} steps in {time.monotonic() - runner.started:.1f}s)", flush=True)
    return 0


def _services(loc: Location, ctx: Context, name: str, container_id: str) -> bool:
    """The branch's services made (seeded where asked) and ready, before its setup: what setup and
    `serve` run may use them at once. False when one is not (said in the log, and in the state)."""
    from dualgit.config import load
    from dualgit.engine.dockerpy import DockerPy
    from dualgit.worktrees import services
    from dualgit.worktrees.plan import environments_for
    from dualgit.worktrees.services import services_for

    now = ["services"]

    def step(what: str) -> None:
        if what != now[0]:
            now[0] = what
            setup_state.write(name, "running", container_id, what)
            print(f"==> {what}", flush=True)

    try:
        declared = services_for(ctx, load(loc.worktree), environments_for(ctx))
        for line in services.bring_up(engines.one(name, DockerPy), loc, declared, container_id, step):
            print(f"==> {line}", flush=True)
    except DualgitError as exc:
        setup_state.write(name, "failed", container_id, now[0])
        print(f"==> {now[0]} failed: {exc.render()}", flush=True)
        return False
    return True


class StepFailed(DualgitError):
    """A step's own failure, said in the log already: a DualgitError, so that it passes through the
    plugins' wrappers without being blamed on one of them."""

    def __init__(self, step: str) -> None:
        super().__init__(f"setup failed at step `{step}`")
        self.step = step


class Runner:
    """The innermost implementation of `dualgit_setup`: the plugins' wrappers run around it."""

    def __init__(self, ctx: Context, container: str, container_id: str) -> None:
        self.ctx = ctx
        self.container = container
        self.container_id = container_id
        self.current = ""
        self.ran: list[str] = []
        self.started = time.monotonic()

    @hookimpl
    def dualgit_setup(self, ctx: Context) -> None:
        steps = [step for step in steps_for(ctx) if step.when == "create"]
        for number, step in enumerate(steps, 1):
            self.current = step.name
            setup_state.write(self.container, "running", self.container_id, step.name)
            print(f"==> [{number}/{len(steps)}] {step.name}", flush=True)
            if not self._run(step):
                raise StepFailed(step.name)
            self.ran.append(step.name)

    def _run(self, step: Step) -> bool:
        if step.run is not None:
            try:
                step.run(self.ctx)
            except Exception as exc:  # noqa: BLE001 - a step's failure is reported, not raised
                print("".join(traceback.format_exception_only(type(exc), exc)).rstrip(), flush=True)
                return False
            return True
        argv = ["sh", "-c", step.command] if isinstance(step.command, str) else list(step.command or ["true"])
        # in this container only: one removed or stopped meanwhile is not brought back by its own setup
        as_root = ["--root"] if step.root else []
        code = subprocess.call([*DUALGIT, "exec", "--no-wait", *as_root, "--", *argv],
                               cwd=self.ctx.worktree, stdin=subprocess.DEVNULL,
                               env={**os.environ, SETUP_CONTAINER: self.container_id})
        if code != 0:
            print(f"(exit status {code})", flush=True)
        return code == 0
