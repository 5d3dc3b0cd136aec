"""Test-only registry support: the bearer-token service, the named test variants, and fault injection.

The registry itself is product code (:class:`meshfilter.oras.server.RegistryServer`, behind
``meshfilter registry serve``). What only tests need lives here:

* :class:`TokenIssuer` – a minimal Docker token service (distribution's token auth spec) issuing ES256 JWTs
  (needs ``cryptography``: ``pip install 'meshfilter[testing]'``);
* :class:`RegistryServer` – the product server with the test variants ``open`` (plain HTTP), ``htpasswd``
  (bcrypt basic auth, a random password per server), ``tls`` (HTTPS, self-signed CA: ``ca_file``) and
  ``token`` (bearer tokens from a :class:`TokenIssuer`);
* :class:`FaultProxy` – an HTTP-aware TCP proxy in front of a real registry that injects faults into chosen
  requests: cut the connection after N request-body bytes, cut a response after N bytes, answer a status
  instead of forwarding, or slow a response down. Everything else passes through byte for byte.

    with RegistryServer(tmp_path, "htpasswd") as reg:
        push(..., **reg.client_kwargs())
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshfilter.oras import server as _server
from meshfilter.oras.server import REGISTRY_BINARY, make_ca_and_cert

VARIANTS = ("open", "htpasswd", "tls", "token")
__all__ = ["VARIANTS", "FaultProxy", "Fault", "RegistryServer", "TokenIssuer", "fake_module", "make_ca_and_cert"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """A minimal Docker token service (distribution's token auth spec) for the ``token`` registry variant.

    ``GET /token?service=...&scope=repository:NAME:pull,push`` with basic auth answers ``{"token": JWT}``
    granting the asked actions; wrong or missing credentials get 401. Tokens are ES256 JWTs carrying the
    self-signed signing certificate in ``x5c``; the registry trusts that certificate (``rootcertbundle``).
    """

    SERVICE = "meshfilter-test-registry"
    ISSUER = "meshfilter-test-issuer"

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.issued: list[dict[str, Any]] = []  # claims of every token issued (tests look at scopes)
        self.port = 0
        self._server: Any = None
        self._key: Any = None
        self.cert_der = b""
        self.cert_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _make_key(self, workdir: Path) -> None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        workdir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshfilter token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self._key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self._key, hashes.SHA256()))
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.cert_path = workdir / "token-signer.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, scope: str) -> str:
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
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    # -- AuthExtension -----------------------------------------------------------------------------
    def start(self, workdir: Path) -> list[str]:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlparse

        self._make_key(workdir / "token")
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
                body = json.dumps({"token": token, "access_token": token, "expires_in": 600}).encode()
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
        return ["  token:", f"    realm: {self.url}/token", f"    service: {self.SERVICE}",
                f"    issuer: {self.ISSUER}", f"    rootcertbundle: {self.cert_path}"]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class RegistryServer(_server.RegistryServer):
    """The product registry in one of the test variants: ``open``, ``htpasswd``, ``tls``, ``token``."""

    def __init__(self, workdir: str | Path, variant: str = "open", *, username: str = "meshfilter",
                 password: str | None = None, timeout: float = 20.0, binary: str = REGISTRY_BINARY) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")
        self.variant = variant
        secret = password or secrets.token_urlsafe(18)
        self.issuer = TokenIssuer(username, secret) if variant == "token" else None
        super().__init__(workdir, users={username: secret} if variant == "htpasswd" else None,
                         tls=variant == "tls", auth=self.issuer, timeout=timeout, binary=binary)
        self._token_user = (username, secret) if variant == "token" else None

    def manifest_status(self, repository: str, reference: str) -> int:
        """The HTTP status of ``GET /v2/<repository>/manifests/<reference>``, asked directly (200: it is there)."""
        from meshfilter.oras.client import RegistryClient
        from meshfilter.oras.formats import MANIFEST_MEDIA_TYPES

        client = RegistryClient(f"{self.host}/{repository}:latest", **self.client_kwargs())
        url = f"{self.url}/v2/{repository}/manifests/{reference}"
        resp = client.conn.request("GET", url, step="check", headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)})
        return resp.status_code

    @property
    def username(self) -> str | None:
        return self._token_user[0] if self._token_user else super().username

    @property
    def password(self) -> str | None:
        return self._token_user[1] if self._token_user else super().password


def fake_module(size: int) -> bytes:
    """``size`` bytes that start like a Wasm module, the rest random (every call its own digest)."""
    return b"\0asm\x01\0\0\0" + secrets.token_bytes(max(0, size - 8))


# -- fault injection -------------------------------------------------------------------------------------

@dataclass
class Fault:
    """One fault for requests whose ``METHOD path`` matches ``match`` (a regex): the first ``skip`` of them
    pass, then the next ``times`` (None: all) get the fault. Exactly one action:

    * ``status``: answer this HTTP status (body consumed, not forwarded), then close;
    * ``cut_request_after``: forward the head and this many body bytes, then reset both connections;
    * ``cut_response_after``: forward the request, relay this many response bytes, then close (mid-body);
    * ``delay``: relay the request body and the response in pieces, sleeping this long before each.
    """

    match: str
    status: int | None = None
    cut_request_after: int | None = None
    cut_response_after: int | None = None
    delay: float | None = None
    times: int | None = 1
    skip: int = 0
    seen: int = 0
    hits: int = 0

    def take(self, line: str) -> bool:
        if not re.search(self.match, line):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


@dataclass
class _Conn:
    cut_response_after: int | None = None
    delay: float | None = None
    relayed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _reset(*socks: socket.socket, graceful: bool = False) -> None:
    """Drop connections now: linger 0 (a reset once closed; ``graceful``: a plain close, so what was sent
    still arrives before the end), and shut down first, which also wakes the other relay thread blocked in
    recv on the same socket (a close alone would wait for it)."""
    for s in socks:
        try:
            if not graceful:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


class FaultProxy:
    """An HTTP/1.1 proxy to ``127.0.0.1:upstream_port`` applying :class:`Fault` s (see the module docstring).

    ``requests`` lists the ``METHOD path`` of every request seen and ``heads`` their heads; ``body_bytes``
    counts request-body bytes forwarded upstream per method. Stop it with :meth:`close` (or use it as a
    context manager)."""

    def __init__(self, upstream_port: int, *faults: Fault) -> None:
        self.upstream_port = upstream_port
        self.faults = list(faults)
        self.requests: list[str] = []
        self.heads: list[str] = []  # every request's head (request line and headers), for assertions
        self.body_bytes: dict[str, int] = {}
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = int(self.sock.getsockname()[1])
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def hits(self) -> int:
        return sum(f.hits for f in self.faults)

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            state = _Conn()
            threading.Thread(target=self._up, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, state), daemon=True).start()

    def _fault_for(self, line: str) -> Fault | None:
        with self.lock:
            self.requests.append(line)
            return next((f for f in self.faults if f.take(line)), None)

    def _up(self, client: socket.socket, upstream: socket.socket, state: _Conn) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                first = head.split(b"\r\n", 1)[0].decode("latin-1")
                method, path = (first.split(" ") + ["", ""])[:2]
                line = f"{method} {path}"
                with self.lock:
                    self.heads.append(head.decode("latin-1"))
                length, chunked = 0, False
                for h in head.split(b"\r\n")[1:]:
                    name, _, value = h.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                    if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                fault = self._fault_for(line)
                if chunked:  # not ours: pass the rest of the connection through untouched
                    upstream.sendall(head + b"\r\n\r\n" + buf)
                    while data := client.recv(65536):
                        upstream.sendall(data)
                    return
                if fault is not None and fault.status is not None:
                    got = len(buf)
                    while got < length:
                        data = client.recv(65536)
                        if not data:
                            return
                        got += len(data)
                    client.sendall(f"HTTP/1.1 {fault.status} Injected\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n".encode())
                    _reset(client, upstream)
                    return
                with state.lock:  # response faults apply to this request's response only
                    state.cut_response_after = fault.cut_response_after if fault is not None else None
                    state.delay = fault.delay if fault is not None else None
                    state.relayed = 0
                limit = fault.cut_request_after if fault is not None else None
                upstream.sendall(head + b"\r\n\r\n")
                sent = 0
                while sent < length:
                    if not buf:
                        buf = client.recv(65536)
                        if not buf:
                            return
                    take = min(length - sent, 65536)
                    piece, buf = buf[:take], buf[take:]
                    if limit is not None and sent + len(piece) > limit:
                        upstream.sendall(piece[:limit - sent])
                        self._count(method, limit - sent)
                        time.sleep(0.05)  # let the registry read what it got before the reset
                        _reset(client, upstream)
                        return
                    if fault is not None and fault.delay:
                        time.sleep(fault.delay)
                    upstream.sendall(piece)
                    sent += len(piece)
                    self._count(method, len(piece))
                if limit is not None and length == 0:
                    _reset(client, upstream)
                    return
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _count(self, method: str, n: int) -> None:
        with self.lock:
            self.body_bytes[method] = self.body_bytes.get(method, 0) + n

    def _down(self, upstream: socket.socket, client: socket.socket, state: _Conn) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                with state.lock:
                    cut, delay = state.cut_response_after, state.delay
                if delay:
                    time.sleep(delay)
                if cut is not None:
                    if state.relayed + len(data) > cut:
                        client.sendall(data[:cut - state.relayed])
                        _reset(client, upstream, graceful=True)  # the client reads those bytes, then the end
                        return
                    state.relayed += len(data)
                client.sendall(data)
        except OSError:
            pass
