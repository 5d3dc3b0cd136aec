"""A real registry for tests: Debian's ``docker-registry`` (Distribution v2) on loopback.

Variants: ``open`` (plain HTTP, no auth), ``htpasswd`` (plain HTTP, bcrypt basic auth made with
``htpasswd -B -i``, password fed on stdin), ``tls`` (HTTPS with a self-signed CA made with openssl; pass
``ca_file``), ``token`` (plain HTTP, bearer-token auth: the registry verifies ES256 JWTs issued by
:class:`TokenIssuer`, a small token service in this process that checks username/password).
Ready means ``/v2/`` answers; the process is ended by its PID in :meth:`stop`.

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
from meshfilter.util.proc import stop_process

REGISTRY_BINARY = "/usr/bin/docker-registry"
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
VARIANTS = ("open", "htpasswd", "tls", "token")


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
        self.username = username if variant in ("htpasswd", "token") else None
        self.password = (password or secrets.token_urlsafe(18)) if self.username else None
        self.issuer: TokenIssuer | None = None
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
        if self.variant == "token":
            assert self.username and self.password
            self.issuer = TokenIssuer(self.workdir / "token", self.username, self.password).start()
            lines += ["auth:", "  token:", f"    realm: {self.issuer.url}/token", f"    service: {TokenIssuer.SERVICE}",
                      f"    issuer: {TokenIssuer.ISSUER}", f"    rootcertbundle: {self.issuer.cert_path}"]
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
        issuer, self.issuer = self.issuer, None
        if issuer is not None:
            issuer.stop()
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        stop_process(proc, timeout=5)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """A minimal Docker token service (distribution's token auth spec) for the ``token`` registry variant.

    ``GET /token?service=...&scope=repository:NAME:pull,push`` with basic auth answers ``{"token": JWT}``
    granting the asked actions; wrong or missing credentials get 401. Tokens are ES256 JWTs carrying the
    self-signed signing certificate in ``x5c``; the registry trusts that certificate (``rootcertbundle``).
    """

    SERVICE = "meshfilter-test-registry"
    ISSUER = "meshfilter-test-issuer"

    def __init__(self, workdir: Path, username: str, password: str) -> None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.username, self.password = username, password
        self.issued: list[dict[str, Any]] = []  # claims of every token issued (tests look at scopes)
        workdir.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshfilter token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.cert_path = workdir / "token-signer.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.port = 0
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def issue(self, scope: str) -> str:
        import base64
        import json as _json

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        access = []
        for item in filter(None, scope.split(" ")):
            typ, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": typ, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        claims = {"iss": self.ISSUER, "sub": self.username, "aud": self.SERVICE, "exp": now + 600,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        self.issued.append(claims)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing_input = (_b64url(_json.dumps(header).encode()) + "." + _b64url(_json.dumps(claims).encode()))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def start(self) -> TokenIssuer:
        import base64
        import json as _json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlparse

        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                want = "Basic " + base64.b64encode(f"{issuer.username}:{issuer.password}".encode()).decode()
                if url.path != "/token" or self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"details":"invalid credentials"}')
                    return
                q = parse_qs(url.query)
                token = issuer.issue(" ".join(q.get("scope", [])))
                body = _json.dumps({"token": token, "access_token": token, "expires_in": 600}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
