"""Dev servers as people start them, checked in a real browser: headless Chromium (Debian's),
driven by Playwright, on a real Vite app on two branches. One branch runs Vite exactly as
`npm run dev` starts it, from `serve`, listening on loopback inside its container; the other with
`--host`. Each page shows its own branch, and an edit on the host reaches the page through HMR,
without a reload. Vite's npm packages are installed once, pinned, by the test set-up; the image
is `dualgit/node:20`, which `scripts/setup --tests` makes from the host's node."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from conftest import PORT, dual, git, need_image
from dualgit.engine.api import DockerAPI
from dualgit.worktrees import agent
from test_proxy_e2e import Proxy
from tests_support import wait_for

NODE_IMAGE = "dualgit/node:20"
APP = {
    "package.json": json.dumps({"name": "demo", "private": True, "type": "module", "scripts": {"dev": "vite"}}),
    "index.html": '<!doctype html><html><body><h1 id="title">?</h1><p id="count">0</p>'
                  '<button id="more">more</button><script type="module" src="/main.js"></script></body></html>\n',
    "main.js": 'import { message } from "./message.js";\n'
               'const title = document.querySelector("#title"), count = document.querySelector("#count");\n'
               'title.textContent = message;\n'
               'document.querySelector("#more").onclick = () => { count.textContent = String(Number(count.textContent) + 1); };\n'
               'if (import.meta.hot) import.meta.hot.accept("./message.js", (m) => { title.textContent = m.message; });\n',
    ".gitignore": "node_modules\n",
}


def app(tree: Path, branch: str, modules: Path, serve: str) -> None:
    for name, text in APP.items():
        (tree / name).write_text(text)
    (tree / "message.js").write_text(f'export const message = "hello from {branch}";\n')
    (tree / ".dual.toml").write_text(f'image = "{NODE_IMAGE}"\nports = [{PORT}]\nserve = "{serve}"\n')
    if not (tree / "node_modules").exists():
        subprocess.run(["cp", "-al", str(modules), str(tree / "node_modules")], check=True)


def test_vite_on_two_branches_in_chromium(repo: Path, tmp_path: Path, docker: DockerAPI, vite_modules: Path,
                                          browser: object) -> None:
    need_image(docker, NODE_IMAGE)
    app(repo, "main", vite_modules, f"npm run dev -- --port {PORT}")  # Vite's default host: loopback inside
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "vite app", cwd=repo)
    assert dual("install", cwd=repo).returncode == 0
    assert dual("up", cwd=repo).returncode == 0
    feat = repo.parent / "demo-feat"
    git("worktree", "add", "-q", str(feat), "-b", "feat", cwd=repo)  # the hook makes its container
    app(feat, "feat", vite_modules, f"npm run dev -- --host 0.0.0.0 --port {PORT}")
    assert dual("serve", "--restart", cwd=feat).returncode == 0  # its changed `serve`, and its node_modules
    proxy = Proxy(repo, tmp_path / "proxy.log", port=PORT)
    proxy.start()
    try:
        for tree in (repo, feat):
            wait_for(lambda tree=tree: "listening on" in dual("serve", cwd=tree).stdout, timeout=60)
        rows = {r["branch"]: r for r in json.loads(dual("ls", "--json", cwd=repo).stdout)}
        assert agent.listening(rows["main"]["container"]).get(PORT) == "loop"  # as `npm run dev` started it
        assert agent.listening(rows["feat"]["container"]).get(PORT) == "wild"
        pages = {}
        for branch in ("main", "feat"):
            tab = browser.new_page()  # type: ignore[attr-defined]
            tab.goto(f"http://{branch}.demo.localhost:{PORT}/")
            tab.wait_for_function(f"document.querySelector('#title').textContent === 'hello from {branch}'",
                                  timeout=30_000)
            pages[branch] = tab
        main = pages["main"]
        main.click("#more")
        main.click("#more")
        assert main.text_content("#count") == "2"
        main.evaluate("window.__kept = 'no reload'")
        (repo / "message.js").write_text('export const message = "edited on the host";\n')
        main.wait_for_function("document.querySelector('#title').textContent === 'edited on the host'",
                               timeout=20_000)
        assert main.evaluate("window.__kept") == "no reload"  # HMR, not a reload
        assert main.text_content("#count") == "2"  # the page's state stayed
        assert pages["feat"].text_content("#title") == "hello from feat"  # the other branch is untouched
        states = {r["branch"]: r["serve"] for r in json.loads(dual("ls", "--json", cwd=repo).stdout)}
        assert [s["detail"] for s in states["main"]] == [f"listening on :{PORT}"]
    finally:
        proxy.stop()


def shows(tab: object, title: str) -> bool:
    """Whether the page shows `title` now; False while it navigates (the waking page reloads itself)."""
    try:
        return bool(tab.evaluate(  # type: ignore[attr-defined]
            f"document.querySelector('#title')?.textContent === {json.dumps(title)}"))
    except Exception:  # noqa: BLE001 - Playwright's error while a navigation replaces the page
        return False


HIDDEN = """(() => {  // this page's visibility, set by the test: Playwright shows every page as visible
  let state = "visible";
  Object.defineProperty(document, "visibilityState", {get: () => state});
  Object.defineProperty(document, "hidden", {get: () => state === "hidden"});
  window.__visibility = (next) => { state = next; document.dispatchEvent(new Event("visibilitychange")); };
})();"""


def test_a_hidden_tab_neither_keeps_its_branch_awake_nor_wakes_it_and_a_page_load_does(
        repo: Path, tmp_path: Path, docker: DockerAPI, vite_modules: Path, browser: object) -> None:
    """Vite as `npm run dev` starts it, with its HMR channel pinging every second: a hidden tab's
    pings and its reconnect probes after the branch slept are not activity; reloading the page wakes
    it, through the waking page, and the app comes back."""
    need_image(docker, NODE_IMAGE)
    app(repo, "main", vite_modules, f"npm run dev -- --port {PORT}")
    (repo / "vite.config.js").write_text("export default { server: { hmr: { timeout: 1000 } } };\n")
    with open(repo / ".dual.toml", "a") as f:
        f.write("idle_after = 6\n")
    assert dual("up", cwd=repo).returncode == 0
    proxy = Proxy(repo, tmp_path / "proxy.log", port=PORT)
    proxy.start()
    try:
        wait_for(lambda: "listening on" in dual("serve", cwd=repo).stdout, timeout=60)
        context = browser.new_context()  # type: ignore[attr-defined]
        context.add_init_script(HIDDEN)
        tab = context.new_page()
        url = f"http://main.demo.localhost:{PORT}/"
        tab.goto(url)
        tab.wait_for_function("document.querySelector('#title').textContent === 'hello from main'", timeout=30_000)
        tab.evaluate("window.__visibility('hidden')")
        wait_for(lambda: json.loads(dual("ls", "--json", cwd=repo).stdout)[0]["state"] == "asleep", timeout=60)
        log = tmp_path / "proxy.log"
        for _ in range(8):  # the probe Vite makes when its socket closes, and nothing since: still asleep
            time.sleep(0.5)
            assert json.loads(dual("ls", "--json", cwd=repo).stdout)[0]["state"] == "asleep"
        assert "awake in" not in log.read_text()
        assert "a hot-reload probe (an open tab's) does not wake it" in log.read_text()  # the probe came
        tab.reload()  # a page load wakes it: the waking page first, then the app
        wait_for(lambda: shows(tab, "hello from main"), timeout=60)  # across the waking page's reloads
        assert "awake in" in log.read_text()
        context.close()
    finally:
        proxy.stop()
