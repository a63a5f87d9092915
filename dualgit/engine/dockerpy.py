"""The engine through docker-py, for the long-running and background work (the proxy's watcher,
the setup runner, background gc, pulls, and the commands nobody times: rm, down, gc, doctor).
docker-py brings what those need and the lean client leaves out: registry auth for pulls, ssh
through the docker CLI's way, and a maintained answer to every engine's quirks. It reaches the
engine `find.endpoint()` names, the one the lean client reaches, and answers `interface.Engine`
with the same errors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import docker
import docker.errors
import docker.tls
import requests.exceptions

from dualgit.engine import find
from dualgit.engine.api import LIBPOD_NETWORK, ApiError, DockerAPI
from dualgit.engine.find import Endpoint
from dualgit.errors import DualgitError

T = TypeVar("T")


def _speaks(method: Callable[..., T]) -> Callable[..., T]:
    """docker-py's errors as the lean client's: ApiError with the engine's status, and
    DualgitError when the engine does not answer."""

    @functools.wraps(method)
    def call(self: DockerPy, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except docker.errors.APIError as exc:
            raise ApiError(exc.status_code or 500, str(exc.explanation or exc)) from None
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise self.unreachable(exc) from None

    return call


def _removed(remove: Callable[[str], object], name: str) -> bool:
    """Whether `remove(name)` removed it: one gone already counts as done (False), as the lean
    client's `remove` has it."""
    try:
        remove(name)
    except docker.errors.NotFound:
        return False
    return True


class _Client(docker.APIClient):  # type: ignore[misc]  # docker-py has no type hints
    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        """Docker's variables say how to reach the engine, not requests': a REQUESTS_CA_BUNDLE
        would replace the engine's CA, and the *_PROXY variables would send it through a proxy."""
        self.trust_env = False
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


class DockerPy:
    def __init__(self, endpoint: Endpoint | None = None, timeout: int = 60) -> None:
        self.endpoint = endpoint or find.settled(find.endpoint())
        kwargs: dict[str, Any] = {}
        tls = self.endpoint.tls
        if tls is not None:
            tls.context()  # a file that does not load is said here, naming it
            kwargs["tls"] = docker.tls.TLSConfig(client_cert=(tls.cert, tls.key) if tls.cert and tls.key else None,
                                                 ca_cert=tls.ca, verify=(tls.ca or True) if tls.verify else False)
        if self.endpoint.kind == "ssh":
            kwargs["use_ssh_client"] = True  # the `ssh` binary and its config, as the docker CLI uses them
        self.settings = {"base_url": self.endpoint.url(), "version": "auto", "timeout": timeout, **kwargs}
        self.made: _Client | None = None

    @property
    def api(self) -> Any:
        """docker-py's client, made on first use: it asks the engine for its API version, and a
        long-running caller (the proxy) starts whether or not the engine answers yet."""
        if self.made is None:
            self.made = _Client(**self.settings)
        return self.made

    def unreachable(self, exc: Exception) -> DualgitError:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if self.endpoint.tls is not None and "SSL" in str(exc):
            try:  # the lean client's handshake says which file is wrong, where requests does not
                DockerAPI(self.endpoint).request("GET", "/_ping", timeout=10)
            except DualgitError as precise:
                return precise
        return DualgitError(f"cannot reach the Docker engine ({self.endpoint.where()}: {reason})",
                            hint=f"that address is {self.endpoint.source}; {find.ENGINE_HINT}")

    @_speaks
    def version(self) -> dict[str, Any]:
        return dict(self.api.version())

    @_speaks
    def info(self) -> dict[str, Any]:
        return dict(self.api.info())

    @_speaks
    def containers(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return list(self.api.containers(all=True, filters=filters))

    @_speaks
    def inspect_container(self, name: str) -> dict[str, Any]:
        return dict(self.api.inspect_container(name))

    @_speaks
    def create_container(self, body: dict[str, Any], name: str) -> str:
        return str(self.api.create_container_from_config(body, name=name)["Id"])

    @_speaks
    def start(self, container: str) -> None:
        self.api.start(container)

    @_speaks
    def pause(self, container: str) -> None:
        self.api.pause(container)

    @_speaks
    def unpause(self, container: str) -> None:
        self.api.unpause(container)

    @_speaks
    def update_container(self, container: str, resources: dict[str, Any]) -> None:
        api = self.api
        api._raise_for_status(api._post_json(api._url("/containers/{0}/update", container), data=resources))

    @_speaks
    def stop(self, container: str, timeout: int) -> None:
        self.api.stop(container, timeout=timeout)

    @_speaks
    def wait(self, container: str) -> int:
        return int(self.api.wait(container)["StatusCode"])

    @_speaks
    def remove_container(self, container: str) -> bool:
        """Idempotent, as the lean client's: gone already, or going, counts as done (False)."""
        try:
            self.api.remove_container(container, v=True, force=True)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "in progress" in str(exc.explanation):
                return False
            raise
        return True

    @_speaks
    def volumes(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return list(self.api.volumes(filters=filters).get("Volumes") or [])

    @_speaks
    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self.api.create_volume(name=name, labels=labels)

    @_speaks
    def remove_volume(self, name: str) -> bool:
        return _removed(self.api.remove_volume, name)

    @_speaks
    def inspect_image(self, name: str) -> dict[str, Any]:
        return dict(self.api.inspect_image(name))

    @_speaks
    def inspect_network(self, name: str) -> dict[str, Any]:
        return dict(self.api.inspect_network(name))

    @_speaks
    def create_network(self, name: str, labels: dict[str, str], options: dict[str, str]) -> None:
        if "isolate" in options:  # Podman's own option, through its own API (see `DockerAPI.create_network`)
            api = self.api
            body = {"name": name, "driver": "bridge", "labels": labels, "options": options}
            api._raise_for_status(api._post_json(api.base_url + LIBPOD_NETWORK, data=body))
            return
        self.api.create_network(name, driver="bridge", labels=labels, options=options, check_duplicate=True)

    @_speaks
    def remove_network(self, name: str) -> bool:
        return _removed(self.api.remove_network, name)

    @_speaks
    def pull(self, name: str, tag: str) -> None:
        """Pull to the end; an error the registry streams back is an ApiError with its words."""
        for event in self.api.pull(name, tag=tag, stream=True, decode=True):
            if isinstance(event, dict) and event.get("error"):
                raise ApiError(500, str(event["error"]))

    def build(self, context: Any, dockerfile: str, tag: str, args: dict[str, str], target: str | None,
              labels: dict[str, str]) -> Iterator[str]:
        """Build from `context`, a tar (a file object), with the engine's BuildKit where it has it
        (API `version=2`; an engine without it, such as Podman's, builds its own way and says so in
        plain lines): each line of its output as it comes, BuildKit's as `--progress=plain` prints
        them. An error it streams back ends it as an ApiError with its words."""
        import json

        from dualgit.engine.buildkit import Progress

        params = {"t": tag, "dockerfile": dockerfile, "buildargs": json.dumps(args), "labels": json.dumps(labels),
                  "rm": "1", "forcerm": "1", "version": "2", **({"target": target} if target else {})}
        headers = {"Content-Type": "application/tar"}
        progress = Progress()
        try:
            self.api._set_auth_headers(headers)  # docker-py's own: the registries' credentials, for FROM
            response = self.api._post(self.api._url("/build"), data=context, params=params, headers=headers,
                                      stream=True, timeout=None)
            self.api._raise_for_status(response)
            for event in self.api._stream_helper(response, decode=True):
                if not isinstance(event, dict):
                    continue
                if event.get("error"):
                    raise ApiError(500, str(event["error"]).strip())
                if event.get("id") == "moby.buildkit.trace" and isinstance(event.get("aux"), str):
                    yield from progress.lines(event["aux"])
                elif event.get("stream"):
                    yield str(event["stream"])
                elif event.get("status"):
                    yield str(event["status"]) + "\n"
        except docker.errors.APIError as exc:
            raise ApiError(exc.status_code or 500, str(exc.explanation or exc)) from None
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise self.unreachable(exc) from None

    @_speaks
    def run(self, container: str, cmd: list[str], user: str | None = None, env: list[str] | None = None,
            timeout: float | None = 30.0, limit: int = 1 << 20) -> tuple[int, bytes]:
        """Run dualgit's own short command in the container to its end: exit code and output.
        Over ssh, docker-py's exec stream breaks as it closes (its ssh process has gone by then:
        BrokenPipeError), so that one goes the docker CLI's way, `docker system dial-stdio`."""
        if self.endpoint.kind == "ssh":
            return DockerAPI(self.endpoint).run(container, cmd, user, env, timeout, limit)
        made = self.api.exec_create(container, cmd, tty=True, user=user or "", environment=env or [])
        output = self.api.exec_start(made["Id"], tty=True)
        code = self.api.exec_inspect(made["Id"]).get("ExitCode")
        return (code if isinstance(code, int) else -1), bytes(output)[:limit]

    def attach(self, container: str, cmd: list[str], user: str | None = None, env: list[str] | None = None,
               timeout: float | None = 30.0) -> tuple[Any, bytes, str]:
        return DockerAPI(self.endpoint).attach(container, cmd, user, env, timeout)  # a raw stream: the lean client's

    def put_archive(self, container: str, folder: str, archive: bytes) -> None:
        DockerAPI(self.endpoint).put_archive(container, folder, archive)

    def exit_code(self, exec_id: str) -> int:
        return DockerAPI(self.endpoint).exit_code(exec_id)

    def events(self, filters: dict[str, list[str]]) -> Iterator[dict[str, Any]]:
        """The engine's events as they come; the stream ends, or raises, when the engine goes."""
        try:
            yield from self.api.events(filters=filters, decode=True)
        except docker.errors.APIError as exc:
            raise ApiError(exc.status_code or 500, str(exc.explanation or exc)) from None
        except (requests.exceptions.ConnectionError, docker.errors.DockerException,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise self.unreachable(exc) from None
