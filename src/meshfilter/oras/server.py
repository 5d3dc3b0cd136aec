"""A local OCI registry: Debian's ``docker-registry`` (Distribution v2) on loopback.

One piece of code behind ``meshfilter registry serve`` and the pytest plugin's ``oci_registry`` fixtures:

    with RegistryServer() as reg:                   # open, plain HTTP, a free port, temporary storage
        RegistryClient(f"{reg.host}/a/b:1", **reg.client_kwargs()).push(artifact)

Options: ``port`` (0: a free one; a taken one is a one-line error), ``storage`` (kept; default: inside the
work directory, which is temporary unless given), ``htpasswd`` (bcrypt basic auth from that file) and
``users`` (name → password, added to it with ``htpasswd -B -i``: the password goes on stdin), ``tls``
(HTTPS with a throwaway CA made with openssl: trust it with ``ca_file``), ``auth`` (an
:class:`AuthExtension` such as the token service in :mod:`meshfilter.testing.registry`).

Ready means ``/v2/`` answers (200 or 401); a failed start tears down what it started and says why, with
the registry's log tail. The registry dies with this process (``util.proc.spawn``: ``PR_SET_PDEATHSIG``), even
on SIGKILL; :meth:`RegistryServer.stop` ends it by PID and removes a temporary work directory. A temporary work
directory is owned (``util.fs.owned_tempdir``): one left by a process that was killed is removed by the next.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import requests

from meshfilter.errors import RegistryError, UsageError
from meshfilter.util.fs import OwnedTempDir, owned_tempdir
from meshfilter.util.ports import free_port
from meshfilter.util.proc import spawn, stop_process

REGISTRY_BINARY = "/usr/bin/docker-registry"
TEMP_PREFIX = "meshfilter-registry-"  # of the temporary work directory (util.fs.owned_tempdir)
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


class AuthExtension(Protocol):
    """Something that serves the registry's ``auth:`` (e.g. a token service) while the registry runs."""

    def start(self, workdir: Path) -> list[str]:
        """Start; return the config lines under ``auth:`` (indented two spaces)."""
        ...

    def stop(self) -> None: ...


def make_ca_and_cert(workdir: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A throwaway CA and a server cert for ``host`` (and localhost). Returns (ca.pem, server.pem, server.key)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = workdir / "ca.key", workdir / "ca.pem"
    key, csr, pem, ext = workdir / "server.key", workdir / "server.csr", workdir / "server.pem", workdir / "ext.cnf"
    ext.write_text(f"subjectAltName=IP:{host},DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run = [
        ["openssl", "req", "-x509", *_EC, "-nodes", "-keyout", ca_key, "-out", ca_pem,
         "-days", "2", "-subj", "/CN=meshfilter local CA"],
        ["openssl", "req", *_EC, "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={host}"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial", "-out", pem,
         "-days", "2", "-extfile", ext],
    ]
    for cmd in run:
        try:
            proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise RegistryError("openssl not found", where="PATH", hint="apt-get install openssl") from None
        if proc.returncode != 0:
            raise RegistryError(f"openssl failed: {proc.stderr.strip().splitlines()[-1:]}", where=str(workdir))
    return ca_pem, pem, key


def add_htpasswd_user(path: Path, username: str, password: str) -> None:
    """Add (or replace) a bcrypt entry with ``htpasswd -B -i``: the password goes on stdin, never in argv."""
    tool = shutil.which("htpasswd")
    if tool is None:
        raise RegistryError("htpasswd not found", where="PATH", hint="apt-get install apache2-utils")
    if ":" in username or not username:
        raise UsageError(f"user name {username!r} is empty or contains ':'", where="users")
    args = [tool, "-B", "-i", *([] if path.exists() else ["-c"]), str(path), username]
    proc = subprocess.run(args, input=password.encode(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise RegistryError("htpasswd failed", where=str(path))
    os.chmod(path, 0o600)


def htpasswd_users(path: Path) -> list[str]:
    """The user names in an htpasswd file."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the htpasswd file ({exc.strerror})", where="htpasswd") from None
    users = [line.split(":", 1)[0] for line in lines if ":" in line and not line.startswith("#")]
    if not users:
        raise UsageError(f"{path} holds no user:hash lines", where="htpasswd",
                         hint="add a user with: htpasswd -B -i FILE USER (the password on stdin)")
    return users


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class RegistryServer:
    def __init__(self, workdir: str | Path | None = None, *, storage: str | Path | None = None, port: int = 0,
                 htpasswd: str | Path | None = None, users: Mapping[str, str] | None = None, tls: bool = False,
                 auth: AuthExtension | None = None, timeout: float = 20.0, binary: str = REGISTRY_BINARY,
                 bind: str = "127.0.0.1") -> None:
        if port < 0 or port > 65535:
            raise UsageError(f"port {port} is out of range", where="port", hint="0 picks a free port")
        if auth is not None and (htpasswd or users):
            raise UsageError("a registry takes one kind of auth", where="auth", hint="drop `htpasswd`/`users`")
        self._temp = workdir is None
        self._owned: OwnedTempDir | None = None
        self.workdir = Path(workdir) if workdir is not None else None
        self.storage = Path(storage) if storage is not None else None
        self.requested_port = port
        self.htpasswd = Path(htpasswd) if htpasswd is not None else None
        self.users = dict(users or {})
        self.tls = tls
        self.auth = auth
        self.timeout = timeout
        self.binary = binary
        self.bind = bind
        self.port = 0
        self.ca_file: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # -- properties ---------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"{self.bind}:{self.port}"

    @property
    def plain_http(self) -> bool:
        return not self.tls

    @property
    def url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.host}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "registry.log"

    @property
    def data_dir(self) -> Path:
        assert self.workdir is not None
        return self.storage or self.workdir / "data"

    @property
    def username(self) -> str | None:
        return next(iter(self.users), None)

    @property
    def password(self) -> str | None:
        return self.users[self.username] if self.username else None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for RegistryClient / resolve_digest: plain_http, ca_file, username, password."""
        kw: dict[str, Any] = {"plain_http": self.plain_http}
        if self.ca_file:
            kw["ca_file"] = str(self.ca_file)
        if self.username:
            kw["username"] = self.username
            kw["password"] = self.password
        return kw

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AssertionError):
            return ""

    # -- lifecycle ----------------------------------------------------------------------------------
    def _config(self) -> str:
        assert self.workdir is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = ["version: 0.1", "log:", "  level: info", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.data_dir}", "  delete:", "    enabled: true",
                 "http:", f"  addr: {self.bind}:{self.port}", f"  secret: {secrets.token_hex(16)}"]
        if self.tls:
            self.ca_file, pem, key = make_ca_and_cert(self.workdir / "tls", self.bind)
            lines += ["  tls:", f"    certificate: {pem}", f"    key: {key}"]
        if self.htpasswd or self.users:
            path = self.htpasswd or self.workdir / "htpasswd"
            for name, password in self.users.items():
                add_htpasswd_user(path, name, password)
            htpasswd_users(path)
            lines += ["auth:", "  htpasswd:", "    realm: meshfilter-registry", f"    path: {path.resolve()}"]
        if self.auth is not None:
            lines += ["auth:", *self.auth.start(self.workdir)]
        return "\n".join(lines) + "\n"

    def start(self) -> RegistryServer:
        if not Path(self.binary).exists():
            raise RegistryError("docker-registry binary not found", where=self.binary,
                                hint="apt-get install docker-registry")
        if self.requested_port and _port_taken(self.bind, self.requested_port):
            raise UsageError(f"port {self.requested_port} on {self.bind} is taken", where="port",
                             hint="choose another `port`, or 0 for a free one")
        if self._temp:  # owned: the next run removes it if this process is killed before stop()
            self._owned = owned_tempdir(TEMP_PREFIX)
            self.workdir = self._owned.path
        assert self.workdir is not None
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.port = self.requested_port or free_port(self.bind)
            cfg = self.workdir / "config.yml"
            cfg.write_text(self._config())
            with open(self.log_path, "wb") as log:
                self.proc = spawn([self.binary, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        verify: bool | str = str(self.ca_file) if self.ca_file else True
        last = ""
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                last = f"exited with {self.proc.returncode}"
                break
            try:
                resp = requests.get(f"{self.url}/v2/", timeout=1, verify=verify)
                if resp.status_code in (200, 401):
                    return
                last = f"/v2/ answered {resp.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.05)
        tail = self.log_tail()
        raise RegistryError(f"registry not ready within {self.timeout:.0f}s ({last}); log tail: {tail!r}",
                            where=self.url, hint="see the registry log; is the port free and the config valid?")

    def wait(self) -> int:
        """Block until the registry exits (it should not: :meth:`stop` ends it); its exit code."""
        assert self.proc is not None
        return self.proc.wait()

    def stop(self) -> None:
        auth, self.auth = self.auth, None
        if auth is not None:
            auth.stop()
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            stop_process(proc, timeout=5)
        owned, self._owned = self._owned, None
        if owned is not None:
            owned.cleanup()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
