"""`git dual proxy install-service` / `uninstall-service`: the proxy as a login service (a systemd
user unit on Linux, a launchd agent on macOS), so that it is up after login with no command run and
the service manager starts it again when it dies. Without one (CI, containers), the supervisor that
`proxy start` spawns does the same while the session lasts."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from dualgit.background import DUALGIT
from dualgit.errors import DualgitError
from dualgit.proxy import daemon

UNIT = "dualgit-proxy.service"
LABEL = "dev.dualgit.proxy"


def unit_path() -> str:
    if sys.platform == "darwin":
        return os.path.expanduser(f"~/Library/LaunchAgents/{LABEL}.plist")
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "systemd", "user", UNIT)


def command() -> list[str]:
    """What the service runs: this dualgit's proxy, in the foreground (the manager supervises it)."""
    return [*DUALGIT, "proxy", "run"]


def unit_text() -> str:
    """Pure but for the paths it names: the unit (or plist) for this dualgit and this user's state dir."""
    state = os.environ.get("XDG_STATE_HOME")
    if sys.platform == "darwin":
        args = "".join(f"    <string>{a}</string>\n" for a in command())
        env = (f"  <key>EnvironmentVariables</key>\n  <dict><key>XDG_STATE_HOME</key><string>{state}</string></dict>\n"
               if state else "")
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
                f'<plist version="1.0">\n<dict>\n  <key>Label</key><string>{LABEL}</string>\n'
                f"  <key>ProgramArguments</key>\n  <array>\n{args}  </array>\n{env}"
                "  <key>RunAtLoad</key><true/>\n  <key>KeepAlive</key><true/>\n</dict>\n</plist>\n")
    env = f"Environment=XDG_STATE_HOME={state}\n" if state else ""
    return ("[Unit]\nDescription=dualgit's per-branch URL proxy (git dual proxy run)\n\n"
            f"[Service]\nExecStart={shlex.join(command())}\n{env}Restart=on-failure\nRestartSec=1\n\n"
            "[Install]\nWantedBy=default.target\n")


def _manager(args: list[str]) -> subprocess.CompletedProcess[str] | None:
    """Run the service manager (systemctl --user, or launchctl); None when there is none to run."""
    tool = "launchctl" if sys.platform == "darwin" else "systemctl"
    if shutil.which(tool) is None:
        return None
    full = [tool, *args] if tool == "launchctl" else [tool, "--user", *args]
    try:
        return subprocess.run(full, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None


def install() -> dict[str, object]:
    """Write the unit and, where a user service manager answers, enable and start it (stopping a
    proxy that `proxy start` runs, so that the two do not fight over the ports)."""
    path = unit_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(unit_text())
    steps = [["load", "-w", path]] if sys.platform == "darwin" else [["daemon-reload"], ["enable", "--now", UNIT]]
    probe = _manager(["list"] if sys.platform == "darwin" else ["show-environment"])  # fails without a user bus
    if probe is None or probe.returncode != 0:
        by_hand = " && ".join(("launchctl " if sys.platform == "darwin" else "systemctl --user ") + shlex.join(s)
                              for s in steps)
        return {"unit": path, "enabled": False, "manager": None, "next": by_hand}
    daemon.stop()
    for step in steps:
        done = _manager(step)
        if done is not None and done.returncode != 0:
            raise DualgitError(f"wrote {path}, but `{shlex.join(step)}` failed: {done.stderr.strip()}",
                               hint="`git dual proxy start` runs the proxy meanwhile")
    return {"unit": path, "enabled": True, "manager": "launchctl" if sys.platform == "darwin" else "systemd"}


def uninstall() -> dict[str, object]:
    path = unit_path()
    if not os.path.exists(path):
        return {"unit": path, "removed": False}
    if sys.platform == "darwin":
        _manager(["unload", "-w", path])
    else:
        _manager(["disable", "--now", UNIT])
    os.remove(path)
    if sys.platform != "darwin":
        _manager(["daemon-reload"])
    return {"unit": path, "removed": True}
