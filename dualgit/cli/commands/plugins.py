"""`git dual plugins`: what plugins are loaded, from which distribution, with which hooks."""

from __future__ import annotations

from dualgit.plugins import plugins as loaded


def plugins(as_json: bool = False) -> int:
    rows = loaded().info()
    if as_json:
        import json

        print(json.dumps([{"name": r.name, "distribution": r.distribution, "version": r.version,
                           "hooks": list(r.hooks)} for r in rows], indent=2))
        return 0
    for r in rows:
        hooks = ", ".join(h.removeprefix("dualgit_") for h in r.hooks)
        print(f"{r.name:<14} {r.distribution} {r.version}  [{hooks}]")
    return 0
