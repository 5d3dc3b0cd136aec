"""Registry I/O: push, pull, inspect and resolve Wasm artifacts over the distribution API.

Built on oras-py (``oras.provider.Registry``): its session, URL building (``oras.container.Container``),
blob existence check (``blob_exists``), monolithic upload (``put_upload``: POST + PUT ?digest=) and blob
fetch (``get_blob``) are used as they are. We replace, each for a measured shortfall (docs/oras.md):

* ``do_request``: oras-py retries EVERY exception five times with sleeps of 3, 5, 11, 29 and 83 s, also
  for non-idempotent POST/PATCH and for a rejected password, so an unreachable registry or a wrong password
  takes over two minutes. Ours: no retry inside a request; whole idempotent steps (HEAD, blob upload as a
  unit, manifest PUT, GET) are retried on 5xx and connection resets with short backoff.
* authentication: oras-py's token backend cannot answer a ``Basic`` challenge (htpasswd registries) and its
  basic backend cannot fetch bearer tokens; :class:`meshfilter.oras.auth.Authenticator` answers both, with
  credentials for this one host only.
* manifests: ``upload_manifest`` always sends the OCI media type and re-serializes the JSON (so Docker
  schema 2 cannot be pushed and the digest is not ours); ``get_manifest`` returns no bytes or digest.
  We PUT/GET exact bytes and check digests.
* ``download_blob`` does not check the digest; we hash while streaming and refuse a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import oras.container
import oras.provider
import requests
import urllib3

from meshfilter.errors import (
    AuthError,
    DigestMismatchError,
    MeshfilterError,
    NotFoundError,
    NotWasmArtifactError,
    RegistryError,
)
from meshfilter.oras.auth import Authenticator, Credentials, resolve_credentials
from meshfilter.oras.formats import (
    MANIFEST_MEDIA_TYPES,
    Artifact,
    Detected,
    detect_format,
    extract_module,
    runtime_config_of,
    sha256_digest,
    validate_manifest,
)
from meshfilter.oras.progress import Progress
from meshfilter.oras.reference import Reference, parse_reference
from meshfilter.oras.runtime_config import RuntimeConfig

T = TypeVar("T")
TIMEOUT = (10.0, 120.0)  # connect, read


class _ServerError(Exception):
    def __init__(self, status: int, step: str) -> None:
        self.status = status
        super().__init__(f"{step}: HTTP {status}")


class _ProgressBody:
    """A file-like request body reporting bytes read to a progress bar."""

    def __init__(self, data: bytes, progress: Progress) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._progress = progress
        self.len = len(data)

    def __len__(self) -> int:
        return self.len

    def read(self, n: int = -1) -> bytes:
        end = self.len if n is None or n < 0 else min(self.len, self._pos + n)
        chunk = bytes(self._data[self._pos:end])
        self._pos = end
        self._progress.advance(len(chunk))
        return chunk


class _OrasRegistry(oras.provider.Registry):
    """oras-py's Registry with meshfilter's request policy: auth for one host, timeouts, no blind retry."""

    def __init__(self, owner: RegistryClient) -> None:
        super().__init__(hostname=owner.ref.registry, insecure=owner.plain_http, tls_verify=owner.verify)
        self.owner = owner
        self.progress_label: str | None = None

    def do_request(self, url: str, method: str = "GET", data: Any = None, headers: dict[str, str] | None = None,
                   json: Any = None, stream: bool = False) -> requests.Response:
        auth = self.owner.authenticator
        for _ in range(3):
            hdrs = dict(headers or {})
            hdrs.update(auth.header)
            body = data
            prog = self.owner.progress
            if prog is not None and isinstance(data, bytes) and method in ("PUT", "PATCH") and len(data) > 65536:
                prog.start(self.progress_label or "upload", len(data))
                body = _ProgressBody(data, prog)
            try:
                resp = self.session.request(method, url, data=body, json=json, headers=hdrs, stream=stream,
                                            verify=self.owner.verify, timeout=TIMEOUT)
            finally:
                if body is not data and prog is not None:
                    prog.done()
            if resp.status_code != 401 or not auth.answer(resp):
                return resp
        return resp


@dataclass(frozen=True)
class Manifest:
    ref: Reference
    digest: str
    media_type: str
    raw: bytes
    doc: dict[str, Any]


@dataclass(frozen=True)
class Pulled:
    ref: Reference
    manifest: Manifest
    detected: Detected
    module: bytes
    runtime_config: RuntimeConfig | None


@dataclass
class PushStats:
    uploaded: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0


def _error_message(resp: requests.Response) -> str:
    try:
        errs = resp.json().get("errors") or []
        msgs = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errs if isinstance(e, dict)]
        if msgs:
            return "; ".join(msgs)[:200]
    except (ValueError, AttributeError):
        pass
    return (resp.reason or "").strip()[:200]


class RegistryClient:
    """One registry host, one repository. ``plain_http`` only when asked; ``insecure`` skips TLS checks."""

    def __init__(self, ref: str | Reference, *, plain_http: bool = False, insecure: bool = False,
                 ca_file: str | None = None, username: str | None = None, password: str | None = None,
                 docker_config: str | None = None, progress: Progress | None = None,
                 attempts: int = 4, backoff: float = 0.25) -> None:
        self.ref = parse_reference(ref) if isinstance(ref, str) else ref
        self.plain_http = plain_http
        self.verify: bool | str = False if insecure else (str(ca_file) if ca_file else True)
        if insecure:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.credentials: Credentials | None = resolve_credentials(
            self.ref.registry, username=username, password=password, docker_config=docker_config)
        self.progress = progress
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.oras = _OrasRegistry(self)
        self.authenticator = Authenticator(self.ref.registry, self.credentials, self.oras.session, self.verify)
        self.container = oras.container.Container(f"{self.ref.registry}/{self.ref.repository}:"
                                                  f"{self.ref.tag or 'latest'}")
        self.scheme = "http" if plain_http else "https"

    # -- policy -----------------------------------------------------------------------------------
    def _check(self, resp: requests.Response, step: str, *, ok: tuple[int, ...] = (200,)) -> requests.Response:
        if resp.status_code in ok:
            return resp
        if resp.status_code in (401, 403):
            raise self.authenticator.fail(resp.status_code)
        if resp.status_code >= 500:
            raise _ServerError(resp.status_code, step)
        if resp.status_code == 400 and "HTTP request to an HTTPS server" in resp.text:
            raise RegistryError("registry speaks HTTPS but --plain-http was given", where=self.ref.registry,
                                hint="drop --plain-http (add --ca-file CA.pem for a private CA)")
        if resp.status_code == 404:
            raise NotFoundError(f"{step}: not found (404) {_error_message(resp)}".rstrip(),
                                where=str(self.ref), hint="check the repository and tag (meshfilter oras inspect)")
        raise RegistryError(f"{step}: HTTP {resp.status_code} {_error_message(resp)}".rstrip(),
                            where=str(self.ref))

    def _retry(self, step: str, fn: Callable[[], T]) -> T:
        """Run an idempotent step, retrying on 5xx and connection errors with exponential backoff."""
        last: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return fn()
            except requests.exceptions.SSLError as exc:
                hint = ("if the registry speaks plain HTTP pass --plain-http; for a private CA pass --ca-file "
                        "CA.pem (or --insecure)")
                reason = "certificate not trusted" if "CERTIFICATE_VERIFY_FAILED" in str(exc) else "TLS failed"
                raise RegistryError(f"{reason} during {step}", where=self.ref.registry, hint=hint) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError, _ServerError) as exc:
                last = exc
        assert last is not None
        if isinstance(last, _ServerError):
            answer = f"HTTP {last.status}" if last.status else "without an upload session"
            raise RegistryError(f"{step} failed: registry answered {answer} "
                                f"{self.attempts} times", where=self.ref.registry,
                                hint="see the registry's log") from None
        text = str(last)
        if isinstance(last, requests.exceptions.ConnectTimeout):
            raise RegistryError("registry unreachable (connect timed out)", where=self.ref.registry,
                                hint="is the host:port right and reachable from here?") from None
        if "Connection refused" in text or "NameResolution" in text or "Failed to resolve" in text \
                or "NewConnectionError" in text:
            raise RegistryError("registry unreachable (connection refused or unknown host)",
                                where=self.ref.registry,
                                hint="is the registry running and is the host:port right?") from None
        raise RegistryError(f"connection lost during {step} after {self.attempts} attempts "
                            f"({type(last).__name__})", where=self.ref.registry,
                            hint="check the network path to the registry and retry") from None

    def _url(self, tail: str) -> str:
        return f"{self.scheme}://{self.ref.registry}/v2/{self.ref.repository}/{tail}"

    # -- operations --------------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/: reachability, TLS, and credentials before any upload."""
        def step() -> None:
            self._check(self.oras.do_request(f"{self.scheme}://{self.ref.registry}/v2/", "GET"), "ping")
        self._retry("ping", step)

    def blob_exists(self, digest: str) -> bool:
        def step() -> bool:
            resp = self.oras.do_request(f"{self.scheme}://{self.container.get_blob_url(digest)}", "HEAD")
            if resp.status_code == 404:
                return False
            self._check(resp, "check blob")
            return True
        return self._retry("check blob", step)

    def upload_blob(self, desc: dict[str, Any], data: bytes) -> None:
        """oras-py's monolithic upload (POST, then PUT ?digest=), retried as a unit (content addressed)."""
        fd, path = tempfile.mkstemp(prefix="meshfilter-blob-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            self.oras.progress_label = f"{desc['mediaType'].rsplit('.', 1)[-1]} {desc['digest'][7:19]}"

            def step() -> None:
                try:
                    resp = self.oras.put_upload(path, self.container,
                                                {"digest": desc["digest"], "size": desc["size"]})
                except ValueError:  # oras-py: no Location for the upload session (5xx, proxy cut, ...)
                    raise _ServerError(0, "upload session") from None
                self._check(resp, f"upload blob {desc['digest'][:19]}", ok=(201, 202, 204))
            self._retry(f"upload of blob {desc['digest'][:19]}", step)
        finally:
            os.unlink(path)

    def push(self, artifact: Artifact, *, stats: PushStats | None = None) -> str:
        """Upload every missing blob, then (only then) the manifest under the tag. Returns its digest."""
        validate_manifest(artifact.manifest, where="manifest to push")
        for desc in artifact.descriptors():
            data = artifact.blobs.get(desc["digest"])
            if data is None or sha256_digest(data) != desc["digest"] or len(data) != desc["size"]:
                raise DigestMismatchError(f"local blob {desc['digest']} is missing or does not match",
                                          where="artifact", hint="rebuild the artifact")
        self.ping()
        stats = stats if stats is not None else PushStats()
        for desc in artifact.descriptors():
            if self.blob_exists(desc["digest"]):
                stats.skipped += 1
                continue
            self.upload_blob(desc, artifact.blobs[desc["digest"]])
            stats.uploaded += 1
            stats.bytes_uploaded += desc["size"]
        tag = self.ref.tag or self.ref.digest or "latest"

        def put_manifest() -> requests.Response:
            resp = self.oras.do_request(self._url(f"manifests/{tag}"), "PUT", data=artifact.manifest_bytes,
                                        headers={"Content-Type": artifact.media_type})
            return self._check(resp, "put manifest", ok=(200, 201))
        resp = self._retry("manifest upload", put_manifest)
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != artifact.digest:
            raise DigestMismatchError(f"registry stored the manifest as {got}, expected {artifact.digest}",
                                      where=str(self.ref))
        return artifact.digest

    def get_manifest(self) -> Manifest:
        def step() -> requests.Response:
            resp = self.oras.do_request(self._url(f"manifests/{self.ref.reference}"), "GET",
                                        headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)})
            return self._check(resp, "get manifest")
        resp = self._retry("manifest fetch", step)
        raw = resp.content
        digest = sha256_digest(raw)
        if self.ref.digest and digest != self.ref.digest:
            raise DigestMismatchError(f"manifest has digest {digest}, not {self.ref.digest}", where=str(self.ref))
        header = resp.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != digest:
            raise DigestMismatchError(f"manifest bytes hash to {digest} but registry says {header}",
                                      where=str(self.ref))
        try:
            doc = json.loads(raw)
        except ValueError:
            raise NotWasmArtifactError("manifest is not JSON", where=str(self.ref)) from None
        media_type = (doc.get("mediaType") if isinstance(doc, dict) else None) or \
            resp.headers.get("Content-Type", "").split(";")[0]
        return Manifest(self.ref, digest, media_type, raw, doc)

    def fetch_blob(self, desc: dict[str, Any]) -> bytes:
        """Stream a blob, hashing as it comes; a digest or size mismatch is refused."""
        digest = desc["digest"]

        def step() -> bytes:
            resp = self.oras.get_blob(self.container, digest, stream=True)
            with resp:
                self._check(resp, f"get blob {digest[:19]}")
                h = hashlib.sha256()
                buf = bytearray()
                for chunk in _iter(resp):
                    h.update(chunk)
                    buf += chunk
            data = bytes(buf)
            if "sha256:" + h.hexdigest() != digest or len(data) != desc["size"]:
                raise DigestMismatchError(f"blob {digest} arrived with digest sha256:{h.hexdigest()} "
                                          f"and size {len(data)} (expected {desc['size']})", where=str(self.ref),
                                          hint="the registry content is corrupt; push again")
            return data
        return self._retry(f"download of blob {digest[:19]}", step)

    def pull(self) -> Pulled:
        m = self.get_manifest()
        detected = detect_format(m.doc, m.media_type, where=f"{self.ref} manifest")
        layer = self.fetch_blob(detected.wasm_layer)
        module = extract_module(detected, layer, where=f"{self.ref} layer {detected.wasm_layer['digest'][:19]}")
        config = self.fetch_blob(m.doc["config"])
        rc = runtime_config_of(detected, m.doc, config, layer if detected.packed else None)
        return Pulled(self.ref, m, detected, module, rc)

    def inspect(self) -> dict[str, Any]:
        m = self.get_manifest()
        detected = detect_format(m.doc, m.media_type, where=f"{self.ref} manifest")
        config = self.fetch_blob(m.doc["config"])
        layer = self.fetch_blob(detected.wasm_layer) if detected.packed else None
        rc = runtime_config_of(detected, m.doc, config, layer)
        return describe(str(self.ref), m.digest, m.media_type, len(m.raw), m.doc, detected, rc)


def _iter(resp: requests.Response) -> Iterator[bytes]:
    for chunk in resp.iter_content(chunk_size=1 << 16):
        if chunk:
            yield chunk


def describe(reference: str, digest: str, media_type: str, size: int, manifest: dict[str, Any],
             detected: Detected, rc: RuntimeConfig | None) -> dict[str, Any]:
    """The inspect document (pure)."""
    return {
        "reference": reference,
        "digest": digest,
        "mediaType": media_type,
        "size": size,
        "format": detected.format,
        "type": rc.type if rc else None,
        "rootIds": list(rc.root_ids) if rc else [],
        "abiVersions": list(rc.abi_versions) if rc else [],
        "annotations": dict(manifest.get("annotations") or {}),
        "config": dict(manifest["config"]),
        "layers": [dict(x) for x in manifest["layers"]],
        "wasmLayer": detected.wasm_layer["digest"],
    }


def resolve_digest(ref: str | Reference, *, plain_http: bool = False, insecure: bool = False,
                   ca_file: str | None = None, username: str | None = None, password: str | None = None) -> str:
    """The manifest digest ``sha256:...`` a tag points at (checked against the manifest bytes)."""
    client = RegistryClient(ref, plain_http=plain_http, insecure=insecure, ca_file=ca_file,
                            username=username, password=password)
    return client.get_manifest().digest


__all__ = ["RegistryClient", "Pulled", "Manifest", "PushStats", "describe", "resolve_digest",
           "AuthError", "MeshfilterError"]
