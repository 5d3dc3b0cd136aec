"""A real registry for tests: Debian's ``docker-registry`` (Distribution v2) on loopback.

Variants: ``open`` (plain HTTP, no auth), ``htpasswd`` (plain HTTP, bcrypt basic auth made with
``htpasswd -B -i``, password fed on stdin), ``tls`` (HTTPS with a self-signed CA made with openssl; pass
``ca_file``). Ready means ``/v2/`` answers; the process is ended by its PID in :meth:`stop`.

    with RegistryServer(tmp_path, variant="htpasswd") as reg:
        push(..., **reg.client_kwargs())
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from meshfilter.errors import RegistryError
from meshfilter.util.ports import free_port

REGISTRY_BINARY = "/usr/bin/docker-registry"
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
VARIANTS = ("open", "htpasswd", "tls")


def make_ca_and_cert(workdir: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A throwaway CA and a server cert for ``host`` (and localhost). Returns (ca.pem, server.pem, server.key)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = workdir / "ca.key", workdir / "ca.pem"
    key, csr, pem, ext = workdir / "server.key", workdir / "server.csr", workdir / "server.pem", workdir / "ext.cnf"
    ext.write_text(f"subjectAltName=IP:{host},DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run = [
        ["openssl", "req", "-x509", *_EC, "-nodes", "-keyout", ca_key, "-out", ca_pem,
         "-days", "2", "-subj", "/CN=meshfilter test CA"],
        ["openssl", "req", *_EC, "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={host}"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial", "-out", pem,
         "-days", "2", "-extfile", ext],
    ]
    for cmd in run:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RegistryError(f"openssl failed: {proc.stderr.strip().splitlines()[-1:]}", where=str(workdir))
    return ca_pem, pem, key


class RegistryServer:
    def __init__(self, workdir: str | Path, variant: str = "open", *, username: str = "meshfilter",
                 password: str | None = None, timeout: float = 20.0, binary: str = REGISTRY_BINARY) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")
        self.workdir = Path(workdir)
        self.variant = variant
        self.username = username if variant == "htpasswd" else None
        self.password = (password or secrets.token_urlsafe(18)) if variant == "htpasswd" else None
        self.timeout = timeout
        self.binary = binary
        self.port = 0
        self.ca_file: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "registry.log"

    # -- properties ---------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def plain_http(self) -> bool:
        return self.variant != "tls"

    @property
    def url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.host}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def client_kwargs(self) -> dict[str, Any]:
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
        except OSError:
            return ""

    # -- lifecycle ----------------------------------------------------------------------------------
    def _config(self) -> str:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = ["version: 0.1", "log:", "  level: info", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {data}", "  delete:", "    enabled: true",
                 "http:", f"  addr: 127.0.0.1:{self.port}", f"  secret: {secrets.token_hex(16)}"]
        if self.variant == "tls":
            self.ca_file, pem, key = make_ca_and_cert(self.workdir / "tls")
            lines += ["  tls:", f"    certificate: {pem}", f"    key: {key}"]
        if self.variant == "htpasswd":
            htpasswd = self.workdir / "htpasswd"
            tool = shutil.which("htpasswd")
            if tool is None:
                raise RegistryError("htpasswd not found", where="PATH", hint="apt-get install apache2-utils")
            assert self.username and self.password
            proc = subprocess.run([tool, "-B", "-i", "-c", str(htpasswd), self.username],
                                  input=self.password.encode(), capture_output=True, check=False)
            if proc.returncode != 0:
                raise RegistryError("htpasswd failed", where=str(htpasswd))
            lines += ["auth:", "  htpasswd:", "    realm: meshfilter-test", f"    path: {htpasswd}"]
        return "\n".join(lines) + "\n"

    def start(self) -> RegistryServer:
        if not Path(self.binary).exists():
            raise RegistryError("docker-registry binary not found", where=self.binary,
                                hint="apt-get install docker-registry")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cfg = self.workdir / "config.yml"
        cfg.write_text(self._config())
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([self.binary, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self._wait_ready()
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
        self.stop()
        raise RegistryError(f"registry not ready within {self.timeout:.0f}s ({last}); log tail: {tail!r}",
                            where=self.url, hint="see the registry log; is the port free and the config valid?")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
