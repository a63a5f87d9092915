"""Engines other than the default socket, each started for real from Debian's packages, on
loopback or on a socket in a temporary folder:

- `TlsFront`: the Docker engine behind `socat`'s TLS listener on 127.0.0.1, which asks for a
  client certificate signed by a CA this module makes with `openssl`;
- `PodmanService`: `podman system service` on a socket of its own, with busybox copied in from
  Docker (`docker save | podman load`): no registry is needed;
- `SshServer`: Debian's sshd on a loopback port with keys made here, through which
  `ssh://root@127.0.0.1` reaches the Docker engine (`docker system dial-stdio`, as the CLI does).

`scripts/setup --tests` installs what these need; a missing one skips its tests off CI and fails
them on CI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests_support import wait_for

IN_CI = bool(os.environ.get("CI"))


def need(*programs: str) -> None:
    missing = [p for p in programs if not shutil.which(p) and not os.path.exists(p)]
    if missing:
        message = f"{', '.join(missing)} missing: run scripts/setup --tests"
        pytest.fail(message) if IN_CI else pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(address: str | tuple[str, int]) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family) as s:
        try:
            s.connect(address)
        except OSError:
            return False
    return True


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> None:
    """`name`.pem and `name`-key.pem: a CA."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", cwd=folder)


def sign(folder: Path, ca: str, name: str, extension: str) -> None:
    """`name`.pem and `name`-key.pem: a certificate the CA `ca` signs, with `extension` (x509v3 lines)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=folder)
    (folder / f"{name}.ext").write_text(extension)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=folder)


class TlsFront:
    """The engine on `tcp://127.0.0.1:PORT` behind TLS that requires a client certificate.
    `certs` holds ca.pem, cert.pem and key.pem as DOCKER_CERT_PATH wants them; `rogue` holds a
    client certificate from a CA the engine does not trust, and `wrong_ca` the right client
    certificate with a CA that did not sign the engine's."""

    def __init__(self, base: Path, engine_socket: str) -> None:
        need("openssl", "socat")
        self.base = base
        work = base / "pki"
        work.mkdir(parents=True)
        make_ca(work, "ca")
        make_ca(work, "other-ca")
        sign(work, "ca", "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        sign(work, "ca", "client", "extendedKeyUsage=clientAuth\n")
        sign(work, "other-ca", "stranger", "extendedKeyUsage=clientAuth\n")
        self.certs = self._folder("certs", "ca", "client")
        self.rogue = self._folder("rogue", "ca", "stranger")
        self.wrong_ca = self._folder("wrong-ca", "other-ca", "client")
        self.port = free_port()
        listen = (f"OPENSSL-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork,cert={work / 'server.pem'},"
                  f"key={work / 'server-key.pem'},cafile={work / 'ca.pem'},verify=1")
        # -t: after one side ends (stdin's end of an exec), the other streams on as long as it needs
        self.proc = subprocess.Popen(["socat", "-t", "120", listen, f"UNIX-CONNECT:{engine_socket}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: listening(("127.0.0.1", self.port)))

    def _folder(self, name: str, ca: str, client: str) -> Path:
        folder = self.base / name
        folder.mkdir()
        for source, target in ((f"{ca}.pem", "ca.pem"), (f"{client}.pem", "cert.pem"), (f"{client}-key.pem", "key.pem")):
            shutil.copy(self.base / "pki" / source, folder / target)
        return folder

    @property
    def host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def close(self) -> None:
        stop(self.proc)


class PodmanService:
    """`podman system service` on `socket`, with this machine's hard limits (below Podman's
    defaults) in its containers.conf, and busybox:latest loaded from the Docker engine."""

    def __init__(self, base: Path) -> None:
        need("podman", "/usr/libexec/podman/catatonit")
        base.mkdir(parents=True, exist_ok=True)
        import resource

        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = 20000 if nofile == resource.RLIM_INFINITY else nofile
        conf = base / "containers.conf"
        conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.socket = str(base / "podman.sock")
        self.proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=open(base / "service.log", "wb"),
                                     start_new_session=True)
        wait_for(lambda: listening(self.socket), timeout=60)
        if subprocess.run(["podman", "image", "exists", "busybox:latest"], env=self.env).returncode != 0:
            saved = subprocess.run(["docker", "save", "busybox:latest"], check=True, capture_output=True).stdout
            subprocess.run(["podman", "load"], input=saved, env=self.env, check=True, capture_output=True)

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def _labelled(self) -> list[dict[str, Any]]:
        ran = subprocess.run(["podman", "ps", "-a", "--filter", "label=dualgit.repo", "--format", "json"],
                             env=self.env, check=True, capture_output=True, text=True)
        return list(json.loads(ran.stdout or "[]"))

    def containers_of(self, worktree: Path) -> list[str]:
        """Ids of the containers dualgit labelled for `worktree`, as Podman's own CLI lists them."""
        return [c["Id"] for c in self._labelled() if (c.get("Labels") or {}).get("dualgit.worktree") == str(worktree)]

    def remove_labelled(self, under: Path) -> None:
        prefix = str(under.resolve())
        for container in [c["Id"] for c in self._labelled()
                          if (c.get("Labels") or {}).get("dualgit.repo", "").startswith(prefix)]:
            subprocess.run(["podman", "rm", "-f", "-v", container], env=self.env, capture_output=True)
        ran = subprocess.run(["podman", "volume", "ls", "--filter", "label=dualgit.repo", "--format", "json"],
                             env=self.env, capture_output=True, text=True)
        for volume in json.loads(ran.stdout or "[]"):
            if (volume.get("Labels") or {}).get("dualgit.repo", "").startswith(prefix):
                subprocess.run(["podman", "volume", "rm", "-f", volume["Name"]], env=self.env, capture_output=True)

    def close(self) -> None:
        stop(self.proc)


def ssh_keys(base: Path) -> None:
    """A host key, and a client key the server lets in (`authorized_keys`), in `base`."""
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / key)], check=True)
    (base / "authorized_keys").write_text((base / "client.pub").read_text())
    os.chmod(base / "authorized_keys", 0o600)


def ssh_client(base: Path) -> Path:
    """A folder with an `ssh` that uses the client key in `base` for 127.0.0.1 (as a user's
    ~/.ssh/config would), to put first on PATH."""
    (base / "ssh_config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {base / 'client'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {base / 'known_hosts'}\n  StrictHostKeyChecking accept-new\n  LogLevel ERROR\n")
    folder = base / "bin"
    folder.mkdir()
    wrapper = folder / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {base / "ssh_config"} "$@"\n')
    wrapper.chmod(0o755)
    return folder


class SshServer:
    """sshd on 127.0.0.1:`port`, letting root in with a key made here. `bin` holds an `ssh` that
    uses this server's client config (as a user's ~/.ssh/config would), to put first on PATH."""

    def __init__(self, base: Path) -> None:
        need("/usr/sbin/sshd", "ssh", "ssh-keygen", "docker")
        base.mkdir(parents=True, exist_ok=True)
        ssh_keys(base)
        self.port = free_port()
        (base / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {base / 'host'}\nPidFile {base / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {base / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "AcceptEnv LANG\n")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(base / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(base / "sshd.log", "wb"),
                                     start_new_session=True)
        wait_for(lambda: listening(("127.0.0.1", self.port)))
        self.bin = ssh_client(base)

    @property
    def host(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def close(self) -> None:
        stop(self.proc)


class RemoteEngine:
    """A second machine, as far as dualgit can tell: a dockerd of its own (data root, exec root,
    containerd, socket) in mount, network, process and host-name namespaces of its own, where /tmp (the
    tests' worktrees) is an empty tmpfs, so no bind mount of a worktree can pass by accident, and
    its containers' published ports sit on its own loopback, out of this machine's reach. It is
    reached as a remote engine is:
    - `ssh_host`: `ssh://root@127.0.0.1:PORT`, through an sshd that socat starts per connection
      inside its namespaces (`sshd -i`), where `docker` finds this engine at the default socket;
    - `tls.host`: TCP with TLS on 127.0.0.1 (`TlsFront` on its socket).
    `images` are copied in with `docker save | docker load`. Its folder is under /var/tmp, outside
    what it hides."""

    def __init__(self, images: list[str]) -> None:
        need("dockerd", "unshare", "nsenter", "socat", "/usr/sbin/sshd", "ssh", "ip")
        import tempfile

        self.base = Path(tempfile.mkdtemp(prefix="dualgit-remote-", dir="/var/tmp"))
        run, self.socket = self.base / "run", str(self.base / "run" / "docker.sock")
        (run / "sshd").mkdir(parents=True)
        engine = (f"mount -t tmpfs tmpfs /tmp && mount --bind {run} /run && hostname remote && ip link set lo up && "
                  f"exec dockerd --data-root {self.base / 'data'} --exec-root /run/exec --pidfile /run/dockerd.pid "
                  f"--host unix:///run/docker.sock --userland-proxy=true")
        self.daemon = subprocess.Popen(["unshare", "--mount", "--net", "--uts", "--pid", "--fork", "--kill-child",
                                        "--mount-proc", "sh", "-c", engine],
                                       stdout=subprocess.DEVNULL, stderr=open(self.base / "dockerd.log", "wb"),
                                       start_new_session=True)
        wait_for(lambda: listening(self.socket), timeout=90)
        self.host = f"unix://{self.socket}"
        self._ssh()
        self.tls = TlsFront(self.base / "tls", self.socket)
        self.load(*images)

    def load(self, *images: str) -> None:
        """Copy `images` from this machine's engine (those it has, and the remote lacks)."""
        here = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}  # this machine's engine

        def present(image: str, *host: str) -> bool:
            return subprocess.run(["docker", *host, "image", "inspect", image], capture_output=True,
                                  env=here).returncode == 0

        wanted = [i for i in images if present(i) and not present(i, "-H", self.host)]
        if wanted:
            saved = subprocess.run(["docker", "save", *wanted], check=True, capture_output=True, env=here).stdout
            subprocess.run(["docker", "-H", self.host, "load", "-q"], input=saved, check=True, capture_output=True,
                           env=here)

    def _ssh(self) -> None:
        base = self.base / "ssh"
        base.mkdir()
        ssh_keys(base)
        (base / "sshd_config").write_text(
            f"HostKey {base / 'host'}\nAuthorizedKeysFile {base / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nAllowTcpForwarding yes\n")
        self.ssh_port = free_port()
        self._ssh_listen()
        self.bin = ssh_client(base)

    def _ssh_listen(self) -> None:
        base = self.base / "ssh"
        inetd = f"nsenter -t {self.daemon.pid} -m -n -u /usr/sbin/sshd -i -e -f {base / 'sshd_config'}"
        self.sshd = subprocess.Popen(["socat", f"TCP-LISTEN:{self.ssh_port},bind=127.0.0.1,reuseaddr,fork",
                                      f"EXEC:{inetd}"], stdout=subprocess.DEVNULL,
                                     stderr=open(base / "sshd.log", "ab"), start_new_session=True)
        wait_for(lambda: listening(("127.0.0.1", self.ssh_port)))

    @property
    def ssh_host(self) -> str:
        return f"ssh://root@127.0.0.1:{self.ssh_port}"

    def inside(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run `argv` on the remote machine (in its namespaces), as its own shell would."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}  # its docker, its engine
        return subprocess.run(["nsenter", "-t", str(self.daemon.pid), "-m", "-n", "-u", *argv],
                              capture_output=True, text=True, env=env)

    def cut_ssh(self) -> None:
        """The remote drops off the network: no new ssh connection, and the live ones end."""
        stop(self.sshd)
        subprocess.run(["pkill", "-f", f"sshd -i -e -f {self.base}/"], capture_output=True)  # this machine's only

    def restore_ssh(self) -> None:
        self._ssh_listen()

    def close(self) -> None:
        for proc in (self.sshd, self.daemon):
            stop(proc)
        self.tls.close()
        subprocess.run(["umount", "-l", str(self.base / "data")], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
