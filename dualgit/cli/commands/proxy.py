"""`git dual proxy run|start|stop|status`, `git dual urls` and `git dual open`."""

from __future__ import annotations

import json
import os
import shutil

from dualgit import __version__
from dualgit.errors import DualgitError
from dualgit.proxy import daemon, hosts
from dualgit.worktrees.targets import listing, worktree_for


def run(replace: bool = False) -> int:
    return daemon.run(replace=replace)


def start() -> int:
    pid = daemon.start()
    print(f"proxy running (pid {pid}); log: {daemon.files()[2]}")
    return 0


def stop() -> int:
    print("proxy stopped" if daemon.stop() else "the proxy was not running")
    return 0


def install_service(as_json: bool = False) -> int:
    from dualgit.proxy import service

    info = service.install()
    if as_json:
        print(json.dumps(info, indent=2))
    elif info["enabled"]:
        print(f"proxy service enabled and started ({info['manager']}): {info['unit']}")
    else:
        print(f"wrote {info['unit']}; no user service manager answers here, so enable it yourself: {info['next']}")
    return 0


def uninstall_service(as_json: bool = False) -> int:
    from dualgit.proxy import service

    info = service.uninstall()
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        print(f"removed {info['unit']}" if info["removed"] else f"no proxy service here ({info['unit']})")
    return 0


def status(as_json: bool = False) -> int:
    info = daemon.status()
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    watching = info.get("supervisor")
    if not info["running"]:
        if isinstance(watching, dict):
            print(f"the proxy is not running; its supervisor (pid {watching['pid']}) {_restarts(watching)}; "
                  f"log: {info['log']}")
        else:
            print(f"the proxy is not running (`git dual proxy start` starts it); log: {info['log']}")
        return 3
    print(f"proxy running (pid {info['pid']}, dualgit {info['version'] or '(older)'})")
    if isinstance(watching, dict):
        print(f"  supervised (pid {watching['pid']}): restarted {watching['restarts']} times"
              + (f", last after it {watching['last_death']}" if watching.get("last_death") else ""))
    else:
        print("  not supervised: started by `git dual proxy run` or an older dualgit (it is not restarted if it dies)")
    if daemon.older(str(info["version"])):
        print(f"  warning: this dualgit is {__version__}: the next `git dual up`, `exec` or `proxy start` "
              "replaces the proxy")
    print("  http ports: " + (", ".join(f":{p}" for p in info.get("http_ports", [])) or "none yet"))  # type: ignore[attr-defined]
    if info.get("tcp_ports"):
        print("  tcp ports: " + ", ".join(f":{p}" for p in info["tcp_ports"]))  # type: ignore[attr-defined]
    for _port, message in (info.get("busy") or {}).items():  # type: ignore[attr-defined]
        print(f"  warning: {message}")
    if info.get("asleep"):
        print(f"  asleep (idle): {len(info['asleep'])} branches; their next request wakes them")  # type: ignore[arg-type]
    if info.get("cap_exceeded"):
        print(f"  warning: {info['cap_exceeded']}")
    print(f"  log: {info['log']}")
    return 0


def _restarts(watching: dict[str, object]) -> str:
    """How the supervisor stands while the proxy is down: restarting it, or backing off a crash loop."""
    import time

    wait = max(float(watching.get("next_start", 0) or 0) - time.time(), 0)  # type: ignore[arg-type]
    if watching.get("crash_loop"):
        return (f"backs off: the proxy keeps dying ({watching.get('last_death')}); next start in {wait:.0f} s "
                "(its log says why; `git dual proxy stop` gives up)")
    return f"starts it again in {wait:.1f} s (it {watching.get('last_death', 'died')})"


def open_(target: str | None = None, port: int | None = None) -> int:
    repo, api, _, trees = listing()
    wt = worktree_for(repo, target, trees)
    rows = [r for r in hosts.current(api).urls(repo.common_dir) if r["branch"] == (wt.branch or os.path.basename(wt.path))]
    served = [r for r in rows if str(r["url"]).startswith("http")]
    if not served:
        raise DualgitError(f"{wt.label} has no HTTP port to open",
                           hint="`git dual up` makes its container; `ports` in .dual.toml lists its ports")
    chosen = [r for r in served if port is None or r["port"] == port]
    if not chosen:
        known = ", ".join(str(r["port"]) for r in served)
        raise DualgitError(f"{wt.label} serves no port {port}", hint=f"it serves {known}: `git dual open --port "
                           f"{served[0]['port']}`; to add {port}: `git dual config add ports {port}`, then `git dual up`")
    url = str(chosen[0]["url"])
    daemon.ensure_started()
    if _has_browser():
        import webbrowser

        webbrowser.open(url)
    print(url)
    return 0


def _has_browser() -> bool:
    if os.environ.get("BROWSER"):
        return True
    if os.uname().sysname == "Darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and any(
        shutil.which(b) for b in ("xdg-open", "x-www-browser", "firefox", "chromium", "google-chrome"))
