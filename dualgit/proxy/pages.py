"""The pages people see from the proxy: the index of branches, 404 and 502."""

from __future__ import annotations

from html import escape

from dualgit.proxy.hosts import Backend

STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;margin:3em auto;max-width:46em;padding:0 1em;color:#222}"
    "code{background:#f3f3f3;padding:.1em .3em;border-radius:3px}li{margin:.3em 0}.dim{color:#777}"
)


def _page(title: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}"
        "<p class=dim>dualgit proxy</p></body></html>\n"
    ).encode()


def _links(backends: list[Backend] | tuple[Backend, ...], port: int, asleep: frozenset[str] = frozenset()) -> str:
    """`asleep`: the containers of the branches that sleep (their next request wakes them)."""
    if not backends:
        return "<p>No branch serves this port yet. In a worktree, <code>git dual up</code> makes its container.</p>"
    items = []
    for b in sorted(backends, key=lambda b: (b.repo, b.branch)):
        url = f"http://{b.host()}:{port}/"
        shown = "asleep" if b.container.name in asleep else b.container.state
        state = "" if b.running else f" <span class=dim>({escape(shown)})</span>"
        items.append(
            f"<li><a href='{escape(url)}'>{escape(url)}</a> <span class=dim>{escape(b.branch_name)} in "
            f"{escape(b.container.worktree)}</span>{state}</li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


def index(backends: list[Backend], port: int, asleep: frozenset[str] = frozenset()) -> bytes:
    return _page(f"Branches on :{port}", _links(backends, port, asleep))


def not_found(reason: str, backends: list[Backend] | tuple[Backend, ...], port: int,
              asleep: frozenset[str] = frozenset()) -> bytes:
    return _page("No such branch", f"<p>{escape(reason)}.</p><p>Branches serving :{port}:</p>"
                 f"{_links(backends, port, asleep)}")


def bad_gateway(backend: Backend, port: int, why: str, fix: str = "") -> bytes:
    """`fix`: what to do, with `code` in backquotes; else the usual: start the server, or the container."""
    c = backend.container
    if fix:
        fix = "<p>" + "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(escape(fix).split("`"))) + "</p>"
    elif backend.running:
        fix = (f"<p>Start the server inside it, listening on 0.0.0.0:{port}, for example "
               f"<code>cd {escape(c.worktree)} &amp;&amp; git dual exec npm run dev</code>.</p>")
    else:
        fix = f"<p>Start it: <code>cd {escape(c.worktree)} &amp;&amp; git dual up</code>.</p>"
    return _page(
        f"{backend.branch_name}: nothing answers on :{port}",
        f"<p>Branch <b>{escape(backend.branch_name)}</b>, container <code>{escape(c.name)}</code> "
        f"({escape(c.state)}): {escape(why)}.</p>{fix}",
    )


def waiting(backend: Backend, port: int, doing: str) -> bytes:
    """While setup runs, or `serve` starts: what is under way, and a page that reloads itself until
    the branch answers."""
    page = _page(f"{backend.branch_name}: {doing}",
                 f"<p>Branch <b>{escape(backend.branch_name)}</b> is not ready on :{port} yet: {escape(doing)}. "
                 f"This page reloads itself.</p><p class=dim><code>cd {escape(backend.container.worktree)} "
                 "&amp;&amp; git dual logs -f</code> follows it.</p>")
    return page.replace(b"<head>", b"<head><meta http-equiv=refresh content=1>", 1)


def message(title: str, text: str) -> bytes:
    return _page(title, f"<p>{escape(text)}</p>")


def waking(backend: Backend, port: int, doing: str = "waking") -> bytes:
    """For a branch that slept: a page that reloads itself until the branch answers."""
    title = f"{doing.capitalize()} {backend.branch_name}\u2026"
    page = _page(title, f"<p>Branch <b>{escape(backend.branch_name)}</b> was asleep (idle), and is starting again "
                 f"with its dev server. This page reloads itself until it answers on :{port}.</p>"
                 f"<p class=dim><code>cd {escape(backend.container.worktree)} &amp;&amp; git dual logs --serve"
                 "</code> shows its server starting.</p>")
    return page.replace(b"<head>", b"<head><meta http-equiv=refresh content=1>", 1)
