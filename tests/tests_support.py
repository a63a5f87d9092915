"""Small helpers shared by the tests."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
import time
from pathlib import Path
from typing import Any


def wait_for(check, timeout: float = 20.0, every: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {getattr(check, '__name__', check)}")
        time.sleep(every)


class LocalRegistry:
    """A Docker registry on loopback (the engine trusts 127.0.0.0/8 over plain HTTP) serving one
    image, the local `source` (busybox) under `image`, so that a test makes the engine really pull.
    Layer downloads wait for `release`, so a test can hold a pull half-way; `fail` answers 404s."""

    def __init__(self, api: Any, tag: str, source: str = "busybox:latest") -> None:
        saved = tarfile.open(fileobj=io.BytesIO(api.request("GET", f"/images/{source}/get").body))
        listed = json.loads(saved.extractfile("manifest.json").read())[0]  # type: ignore[union-attr]
        # An image of its own (a label in its config, a gzip stamp on its layer): the engine has seen
        # neither, so it downloads them (it skips an image or a blob that it knows), and a held
        # download really holds the pull.
        stamp = int.from_bytes(os.urandom(4), "big")
        settings = json.loads(saved.extractfile(listed["Config"]).read())  # type: ignore[union-attr]
        settings.setdefault("config", {})["Labels"] = {"dualgit-test.registry": str(stamp)}
        config = json.dumps(settings).encode()
        layers = [gzip.compress(saved.extractfile(name).read(), 1, mtime=stamp)  # type: ignore[union-attr]
                  for name in listed["Layers"]]
        self.blobs = {_digest(b): b for b in (config, *layers)}
        self.layers = {_digest(b) for b in layers}
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                       "digest": _digest(config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(b),
                        "digest": _digest(b)} for b in layers],
        }).encode()
        self.release = threading.Event()
        self.fail = False
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.image = f"127.0.0.1:{self.server.server_address[1]}/dualgit-test/{tag}:latest"
        self.repository = self.image.split("/", 1)[1].rsplit(":", 1)[0]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                prefix = f"/v2/{registry.repository}/"
                kind, _, ref = self.path[len(prefix):].partition("/") if self.path.startswith(prefix) else ("", "", "")
                if self.path == "/v2/":
                    data, media = b"{}", "application/json"
                elif not registry.fail and kind == "manifests" and ref in ("latest", _digest(registry.manifest)):
                    data, media = registry.manifest, "application/vnd.docker.distribution.manifest.v2+json"
                elif not registry.fail and kind == "blobs" and ref in registry.blobs and registry.let_through(ref, body):
                    data, media = registry.blobs[ref], "application/octet-stream"
                else:
                    data, media = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not here"}]}', "application/json"
                    self.send_response(404)
                    self._send(data, media, body)
                    return
                self.send_response(200)
                self.send_header("Docker-Content-Digest", _digest(data))
                self._send(data, media, body)

            def _send(self, data: bytes, media: str, body: bool) -> None:
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler

    def let_through(self, ref: str, body: bool) -> bool:
        """A layer's download waits for `release`; False when the registry was stopped meanwhile."""
        if body and ref in self.layers:
            self.release.wait(120)
        return not self.fail

    def stop(self) -> None:
        """Answer no more: a pull still waiting fails now (and makes no container later)."""
        self.fail = True
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def remove_image(self, api: Any) -> None:
        """The pulled image goes by its name (its containers must be gone)."""
        try:
            api.request("DELETE", f"/images/{self.image}", query={"force": 1})
        except Exception:  # noqa: BLE001 - never pulled
            pass


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class DistributionRegistry:
    """Debian's docker-registry (the CNCF distribution registry) on loopback, with a push of an OCI
    artifact as the devcontainers CLI publishes a feature: a config blob and one tar layer."""

    def __init__(self, root: Path, port: int) -> None:
        import shutil
        import subprocess

        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        config = root / "registry.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                          f"http:\n  addr: 127.0.0.1:{port}\n")
        self.address = f"127.0.0.1:{port}"
        self.process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for(lambda: _answers(f"http://{self.address}/v2/"), timeout=30)

    def push_feature(self, repository: str, tag: str, files: dict[str, str]) -> None:
        import tarfile as tar

        buffer = io.BytesIO()
        with tar.open(fileobj=buffer, mode="w") as archive:
            for name, text in files.items():
                data = text.encode()
                info = tar.TarInfo(f"./{name}")
                info.size, info.mode = len(data), 0o755
                archive.addfile(info, io.BytesIO(data))
        layer, config = buffer.getvalue(), b"{}"
        for blob in (config, layer):
            self._put_blob(repository, blob)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.devcontainers", "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": "application/vnd.devcontainers.layer.v1+tar", "size": len(layer),
                        "digest": _digest(layer), "annotations": {"org.opencontainers.image.title": "feature.tgz"}}],
        }).encode()
        self._request("PUT", f"/v2/{repository}/manifests/{tag}", manifest,
                      {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    def _put_blob(self, repository: str, blob: bytes) -> None:
        import urllib.parse

        location = self._request("POST", f"/v2/{repository}/blobs/uploads/", b"", {}).headers["Location"]
        parts = urllib.parse.urlsplit(location)
        query = (parts.query + "&" if parts.query else "") + f"digest={_digest(blob)}"
        self._request("PUT", f"{parts.path}?{query}", blob, {"Content-Type": "application/octet-stream"})

    def _request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
        import urllib.request

        request = urllib.request.Request(f"http://{self.address}{path}", data=body, method=method, headers=headers)
        return urllib.request.urlopen(request, timeout=30)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _answers(url: str) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except OSError:
        return False
