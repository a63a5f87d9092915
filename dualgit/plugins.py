"""Loading plugins: every `dualgit` entry point (the built-ins too), or those `DUALGIT_PLUGINS`
names; calling them so that a plugin that raises is named in the error."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

import pluggy

from dualgit import hookspecs
from dualgit.errors import DualgitError

GROUP = "dualgit"
ONLY_ENV = "DUALGIT_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


class Plugins:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.dists: dict[str, tuple[str, str]] = {}
        self.modules: dict[str, str] = {}  # module name -> plugin name, to name a culprit
        points = list(metadata.entry_points(group=GROUP))
        only = [n.strip() for n in os.environ.get(ONLY_ENV, "").split(",") if n.strip()]
        missing = sorted(set(only) - {p.name for p in points})
        if missing:
            raise DualgitError(
                f"{ONLY_ENV} names {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed",
                hint=f"installed plugins: {', '.join(sorted(p.name for p in points)) or 'none'}; "
                f"install the missing one, or fix {ONLY_ENV}",
            )
        for point in points:
            if only and point.name not in only:
                continue
            dist = point.dist.name if point.dist else "?"
            try:
                plugin = point.load()
            except Exception as exc:  # noqa: BLE001 - any failure of someone else's code
                raise DualgitError(f"plugin {point.name} ({dist}) failed to load: {type(exc).__name__}: {exc}",
                                   hint=f"fix or uninstall {dist}, or leave it out with {ONLY_ENV}")
            self.pm.register(plugin, name=point.name)
            self.dists[point.name] = (dist, point.dist.version if point.dist else "?")
            self.modules[getattr(plugin, "__name__", type(plugin).__module__)] = point.name

    def call(self, hook: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.pm.hook, hook)(**kwargs)
        except DualgitError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's failure, told with its name
            raise DualgitError(f"plugin {self.culprit(exc)} failed in {hook}: {type(exc).__name__}: {exc}",
                               hint=f"fix or uninstall that plugin, or leave it out with {ONLY_ENV}") from exc

    def culprit(self, exc: BaseException) -> str:
        name = "?"
        tb = exc.__traceback__
        while tb is not None:
            module = tb.tb_frame.f_globals.get("__name__", "")
            name = self.modules.get(module, name)
            tb = tb.tb_next
        return name

    def info(self) -> list[PluginInfo]:
        rows = []
        for name, plugin in self.pm.list_name_plugin():
            if name not in self.dists:
                continue
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or []))
            rows.append(PluginInfo(name, *self.dists[name], hooks))
        return sorted(rows, key=lambda r: r.name)

    def config_keys(self) -> list[str]:
        return [key for keys in self.call("dualgit_config_keys") for key in keys]


@cache
def plugins() -> Plugins:
    return Plugins()
