"""Loading plugins: the built-ins (the `dualgit` distribution's own entry points) always, and every
third-party `dualgit` entry point, or those `DUALGIT_PLUGINS` names; `no:NAME` in it turns any one
off, a built-in too (as pytest's `-p no:NAME`). Calling them so that a plugin that raises is named."""

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
BUILTIN = "dualgit"  # the distribution whose entry points are the built-ins


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


def chosen(points: list[metadata.EntryPoint], setting: str) -> list[metadata.EntryPoint]:
    """Pure: the entry points to load for a `DUALGIT_PLUGINS` value. Built-ins always, unless named
    with `no:`; third-party ones all, or only those named."""
    words = [w.strip() for w in setting.split(",") if w.strip()]
    off = {w[3:].strip() for w in words if w.startswith("no:")}
    only = {w for w in words if not w.startswith("no:")}
    known = {p.name for p in points}
    missing = sorted((only | off) - known)
    if missing:
        raise DualgitError(
            f"{ONLY_ENV} names {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed",
            hint=f"installed plugins: {', '.join(sorted(known)) or 'none'}; install the missing one, or fix {ONLY_ENV}",
        )
    builtin = {p.name for p in points if p.dist is not None and p.dist.name == BUILTIN}
    return [p for p in points if p.name not in off and (p.name in builtin or not only or p.name in only)]


class Plugins:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.dists: dict[str, tuple[str, str]] = {}
        self.modules: dict[str, str] = {}  # module name -> plugin name, to name a culprit
        for point in chosen(list(metadata.entry_points(group=GROUP)), os.environ.get(ONLY_ENV, "")):
            dist = point.dist.name if point.dist else "?"
            try:
                plugin = point.load()
            except Exception as exc:  # noqa: BLE001 - any failure of someone else's code
                raise DualgitError(f"plugin {point.name} ({dist}) failed to load: {type(exc).__name__}: {exc}",
                                   hint=f"fix or uninstall {dist}, or turn it off with {ONLY_ENV}=no:{point.name}")
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
                               hint=f"fix or uninstall that plugin, or turn it off with {ONLY_ENV}=no:NAME") from exc

    def each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """`call`, one plugin at a time, in the order `call` takes them: (plugin name, its result)
        for each, for a caller that says which plugin asked for what."""
        caller = getattr(self.pm.hook, hook)
        found = []
        for impl in reversed(caller.get_hookimpls()):  # pluggy calls the last registered first
            try:
                found.append((impl.plugin_name, impl.function(**{k: kwargs[k] for k in impl.argnames})))
            except DualgitError:
                raise
            except Exception as exc:  # noqa: BLE001 - as in `call`
                raise DualgitError(f"plugin {impl.plugin_name} failed in {hook}: {type(exc).__name__}: {exc}",
                                   hint=f"fix or uninstall that plugin, or turn it off with {ONLY_ENV}=no:NAME") from exc
        return found

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

    def config_keys(self) -> dict[str, Any]:
        """Every plugin's top-level `.dual.toml` keys, each with the type its value must have (Any
        where the plugin named the key only)."""
        found: dict[str, Any] = {}
        for keys in self.call("dualgit_config_keys"):
            found.update(keys if isinstance(keys, dict) else dict.fromkeys(keys, Any))
        return found


@cache
def plugins() -> Plugins:
    return Plugins()
