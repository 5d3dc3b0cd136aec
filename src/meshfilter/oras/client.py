"""Registry I/O over the distribution API: push, pull, inspect, resolve, tags, and the blob/manifest store
operations :mod:`meshfilter.oras.copy` moves artifacts with.

URLs come from :mod:`meshfilter.oras.endpoints` (pure), requests go through
:class:`meshfilter.oras.transport.Connection` (session, TLS, auth challenges, failures mapped by type).
The policy here:

* **Order of a push**: ``GET /v2/`` (reachability, TLS, credentials) → ``HEAD`` each blob (present ones are
  skipped) → upload the missing ones → only then ``PUT`` the manifest under the tag. An interrupted push
  leaves no tag.
* **Uploads stream from memory** (a memoryview of the caller's bytes; no temporary copy). A blob up to
  ``chunk_size`` goes up monolithically (``POST``, then ``PUT ?digest=`` with the body); a larger one in
  ``PATCH`` chunks of ``chunk_size``. When a chunk's connection drops, the client asks the registry where
  the upload stands (``GET`` on the upload URL: ``Range: 0-<last>``) and continues from there; a registry
  that no longer knows the upload (docker-registry 2.8 drops one whose chunk was cut halfway) gets a fresh
  upload. The registry checks the digest on the final ``PUT``.
* **Downloads** hash while streaming and refuse a digest or size mismatch; a connection dropped mid-blob
  resumes with ``Range: bytes=<received>-`` (a registry answering 200 instead of 206 starts it over).
* **Retries**: whole idempotent steps (ping, HEAD, GET, the manifest PUT, a monolithic upload, one chunk)
  are retried on connection loss and 5xx, ``attempts`` times with exponential ``backoff``; never TLS
  failures or 4xx.
* **Image indexes** resolve to the manifest Istio would take (:func:`~meshfilter.oras.formats.select_manifest`);
  the choice is reported in notes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

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
from meshfilter.oras import endpoints as ep
from meshfilter.oras.auth import Credentials, resolve_credentials
from meshfilter.oras.formats import (
    MANIFEST_MEDIA_TYPES,
    Artifact,
    Detected,
    IndexChoice,
    detect_format,
    extract,
    is_index,
    runtime_config_of,
    select_manifest,
    validate_manifest,
)
from meshfilter.oras.progress import Bar, Progress
from meshfilter.oras.reference import Reference, parse_reference
from meshfilter.oras.runtime_config import RuntimeConfig
from meshfilter.oras.transport import TIMEOUT, Connection, Transient, view_body
from meshfilter.util.digest import sha256_digest
from meshfilter.util.fs import WriteBehind, atomic_writer

T = TypeVar("T")
DEFAULT_CHUNK_SIZE = 16 << 20  # blobs larger than this are uploaded in PATCH chunks of this size
_RESTART_CODES = {"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID", "DIGEST_INVALID", "RANGE_INVALID"}


@dataclass(frozen=True)
class Manifest:
    ref: Reference
    digest: str
    media_type: str
    raw: bytes
    doc: dict[str, Any]


@dataclass(frozen=True)
class Resolved:
    """The image manifest a reference stands for; ``index`` when it went through an image index."""

    manifest: Manifest
    index: Manifest | None = None
    choice: IndexChoice | None = None

    def notes(self) -> list[str]:
        return [self.choice.note(str(self.manifest.ref))] if self.choice is not None else []


@dataclass(frozen=True)
class Pulled:
    ref: Reference
    manifest: Manifest
    detected: Detected
    module: bytes
    runtime_config: RuntimeConfig | None
    index: Manifest | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PulledFile:
    """What :meth:`RegistryClient.pull_to` wrote: the module's ``size`` in bytes at ``path``."""
    ref: Reference
    manifest: Manifest
    detected: Detected
    path: Path
    size: int
    index: Manifest | None = None
    notes: tuple[str, ...] = ()


@dataclass
class PushStats:
    uploaded: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    chunks: int = 0       # PATCH requests that landed
    resumed: int = 0      # uploads continued where the registry said they stood, after a dropped connection
    restarted: int = 0    # uploads begun again because the registry no longer knew them
    manifests: int = 0


def _error_codes(resp: requests.Response) -> tuple[set[str], str]:
    try:
        errs = resp.json().get("errors") or []
        codes = {str(e.get("code", "")) for e in errs if isinstance(e, dict)}
        msgs = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errs if isinstance(e, dict)]
        if msgs:
            return codes, "; ".join(msgs)[:200]
    except (ValueError, AttributeError):
        pass
    return set(), (resp.reason or "").strip()[:200]


def _error_message(resp: requests.Response) -> str:
    return _error_codes(resp)[1]


class _Restart(Exception):
    """The registry no longer knows (or refused) an upload: begin it again."""


class RegistryClient:
    """One registry host, one repository. ``plain_http`` only when asked; ``insecure`` skips TLS checks.

    Credentials: ``username``/``password`` when given, else the docker config entry for this host only
    (``docker_config``: a file named explicitly must exist)."""

    def __init__(self, ref: str | Reference, *, plain_http: bool = False, insecure: bool = False,
                 ca_file: str | None = None, username: str | None = None, password: str | None = None,
                 docker_config: str | None = None, progress: Progress | None = None,
                 attempts: int = 4, backoff: float = 0.25, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 timeout: tuple[float, float] = TIMEOUT) -> None:
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
        self.chunk_size = max(1, chunk_size)
        self.conn = Connection(self.ref.registry, plain_http=plain_http, verify=self.verify,
                               credentials=self.credentials, timeout=timeout)
        self.authenticator = self.conn.authenticator

    # -- policy -----------------------------------------------------------------------------------
    def _check(self, resp: requests.Response, step: str, *, ok: tuple[int, ...] = (200,)) -> requests.Response:
        if resp.status_code in ok:
            return resp
        if resp.status_code in (401, 403):
            raise self.authenticator.fail(resp.status_code)
        if resp.status_code >= 500:
            raise Transient("status", step, status=resp.status_code)
        if resp.status_code == 400 and "HTTP request to an HTTPS server" in resp.text:
            raise RegistryError("registry speaks HTTPS but `plain_http` was given", where=self.ref.registry,
                                hint="drop `plain_http` (add `ca_file` CA.pem for a private CA)")
        if resp.status_code == 404:
            raise NotFoundError(f"{step}: not found (404) {_error_message(resp)}".rstrip(),
                                where=str(self.ref), hint="check the repository and tag (meshfilter oras inspect)")
        raise RegistryError(f"{step}: HTTP {resp.status_code} {_error_message(resp)}".rstrip(),
                            where=str(self.ref))

    def _pause(self, attempt: int) -> None:
        time.sleep(self.backoff * 2 ** (attempt - 1))

    def _retry(self, step: str, fn: Callable[[], T]) -> T:
        """Run an idempotent step, retrying on connection loss and 5xx with exponential backoff."""
        last: Transient | None = None
        for attempt in range(self.attempts):
            if attempt:
                self._pause(attempt)
            try:
                return fn()
            except Transient as exc:
                last = exc
        assert last is not None
        raise last.error(self.ref.registry, self.attempts, step) from None

    def _url(self, tail: str) -> str:
        return f"{ep.base_url(self.ref.registry, self.plain_http)}/v2/{self.ref.repository}/{tail}"

    # -- blobs -------------------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/: reachability, TLS, and credentials before any upload."""
        def step() -> None:
            self._check(self.conn.request("GET", ep.api_root(self.ref.registry, self.plain_http), step="ping"),
                        "ping")
        self._retry("ping", step)

    def blob_exists(self, digest: str) -> bool:
        def step() -> bool:
            resp = self.conn.request("HEAD", ep.blob_url(self.ref, self.plain_http, digest), step="check blob")
            if resp.status_code == 404:
                return False
            self._check(resp, "check blob")
            return True
        return self._retry("check blob", step)

    def _post_upload(self, step: str) -> str:
        resp = self.conn.request("POST", ep.upload_start_url(self.ref, self.plain_http), step=step,
                                 headers={"Content-Length": "0"})
        self._check(resp, step, ok=(202,))
        location = resp.headers.get("Location")
        if not location:
            raise Transient("status", step, status=0)
        return ep.absolute(resp.url, location)

    def upload_blob(self, desc: dict[str, Any], data: bytes | bytearray | memoryview,
                    stats: PushStats | None = None) -> None:
        """Upload one blob from memory: monolithic up to ``chunk_size``, else chunked with resume."""
        view = memoryview(data).cast("B")
        if len(view) != desc["size"]:
            raise DigestMismatchError(f"blob {desc['digest']} is {len(view)} bytes, its descriptor says "
                                      f"{desc['size']}", where="artifact", hint="rebuild the artifact")
        label = f"{desc['mediaType'].rsplit('.', 1)[-1].rsplit('/', 1)[-1]} {desc['digest'][7:19]}"
        bar = Bar(self.progress, label, len(view))
        try:
            if len(view) <= self.chunk_size:
                self._upload_whole(desc, view, bar)
            else:
                self._upload_chunked(desc, view, bar, stats if stats is not None else PushStats())
        finally:
            bar.done()

    def _upload_whole(self, desc: dict[str, Any], view: memoryview, bar: Bar) -> None:
        step = f"upload of blob {desc['digest'][:19]}"

        def attempt() -> None:
            bar.set(0)
            location = self._post_upload(step)
            resp = self.conn.request("PUT", ep.with_query(location, digest=desc["digest"]), step=step,
                                     headers={"Content-Type": ep.OCTET_STREAM, "Content-Length": str(len(view))},
                                     body=view_body(view, bar.advance if bar.active else None))
            self._check(resp, f"upload blob {desc['digest'][:19]}", ok=(201, 202, 204))
        self._retry(step, attempt)

    def _upload_state(self, location: str, step: str) -> tuple[str, int] | None:
        """Where an upload stands: (its URL, bytes the registry holds), or None if it knows it no more."""
        resp = self.conn.request("GET", location, step=step)
        if resp.status_code in (200, 204):
            got = ep.received_bytes(resp.headers.get("Range"))
            new = resp.headers.get("Location")
            return (ep.absolute(location, new) if new else location), (got or 0)
        if resp.status_code in (400, 404, 416):
            return None
        self._check(resp, step, ok=(204,))
        return None

    def _upload_chunked(self, desc: dict[str, Any], view: memoryview, bar: Bar, stats: PushStats) -> None:
        step = f"upload of blob {desc['digest'][:19]}"
        size, digest = len(view), desc["digest"]
        location = self._retry(step, lambda: self._post_upload(step))
        offset, failures = 0, 0
        while True:
            try:
                if offset < size:
                    end = min(size, offset + self.chunk_size)
                    body = view_body(view[offset:end], bar.advance if bar.active else None)
                    resp = self.conn.request(
                        "PATCH", location, step=step, body=body,
                        headers={"Content-Type": ep.OCTET_STREAM, "Content-Range": ep.content_range(offset, end),
                                 "Content-Length": str(end - offset)})
                    if resp.status_code == 202 and resp.headers.get("Location"):
                        location = ep.absolute(location, resp.headers["Location"])
                        got = ep.received_bytes(resp.headers.get("Range"))
                        offset = got if got is not None and offset < got <= size else end
                        stats.chunks += 1
                        failures = 0
                        continue
                else:
                    resp = self.conn.request("PUT", ep.with_query(location, digest=digest), step=step,
                                             headers={"Content-Type": ep.OCTET_STREAM, "Content-Length": "0"})
                    if resp.status_code in (201, 204):
                        return
                codes, _ = _error_codes(resp)
                if resp.status_code in (400, 404, 416) and codes & _RESTART_CODES:
                    raise _Restart
                if resp.status_code == 202:  # a 202 without Location: the upload is lost to us
                    raise Transient("status", step, status=0)
                self._check(resp, f"upload blob {digest[:19]}", ok=())
            except (Transient, _Restart) as exc:
                failures += 1
                if failures >= self.attempts:
                    if isinstance(exc, Transient):
                        raise exc.error(self.ref.registry, self.attempts) from None
                    raise RegistryError(f"{step} failed: the registry refused the upload {self.attempts} times",
                                        where=self.ref.registry, hint="see the registry's log") from None
                self._pause(failures)
                try:
                    if offset >= size and self.blob_exists(digest):
                        return  # the commit landed; only its answer was lost
                    state = None if isinstance(exc, _Restart) else self._upload_state(location, step)
                    if state is None or state[1] > size:
                        location, offset = self._post_upload(step), 0
                        stats.restarted += 1
                    else:
                        location, offset = state
                        stats.resumed += 1
                    bar.set(offset)
                except Transient:
                    continue  # the next attempt meets the same trouble, or not; either way it counts

    # -- manifests ---------------------------------------------------------------------------------
    def push_manifest(self, raw: bytes, media_type: str, reference: str) -> str:
        """PUT exact manifest bytes under a tag or digest; the registry's digest must be ours."""
        digest = sha256_digest(raw)

        def put() -> requests.Response:
            resp = self.conn.request("PUT", ep.manifest_url(self.ref, self.plain_http, reference), step="put manifest",
                                     body=raw, headers={"Content-Type": media_type})
            return self._check(resp, "put manifest", ok=(200, 201))
        resp = self._retry("manifest upload", put)
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise DigestMismatchError(f"registry stored the manifest as {got}, expected {digest}",
                                      where=str(self.ref))
        return digest

    def push(self, artifact: Artifact, *, stats: PushStats | None = None) -> str:
        """Upload every missing blob, then (only then) the manifest under the tag. Returns its digest."""
        validate_manifest(artifact.manifest, where="manifest to push")
        for desc in artifact.descriptors():  # digests were computed (or checked) when the artifact was made;
            data = artifact.blobs.get(desc["digest"])  # the registry checks them again on each blob's PUT
            if data is None or len(data) != desc["size"]:
                raise DigestMismatchError(f"local blob {desc['digest']} is missing or does not match",
                                          where="artifact", hint="rebuild the artifact")
        self.ping()
        stats = stats if stats is not None else PushStats()
        for desc in artifact.descriptors():
            if self.blob_exists(desc["digest"]):
                stats.skipped += 1
                continue
            self.upload_blob(desc, artifact.blobs[desc["digest"]], stats)
            stats.uploaded += 1
            stats.bytes_uploaded += desc["size"]
        digest = self.push_manifest(artifact.manifest_bytes, artifact.media_type,
                                    self.ref.tag or self.ref.digest or "latest")
        stats.manifests += 1
        return digest

    def get_manifest(self, reference: str | None = None) -> Manifest:
        """The manifest (or index) at ``reference`` (default: the ref's digest or tag), digest-checked."""
        reference = reference or self.ref.reference
        ref = self.ref.with_digest(reference) if reference.startswith("sha256:") else self.ref

        def step() -> requests.Response:
            resp = self.conn.request("GET", ep.manifest_url(self.ref, self.plain_http, reference), step="get manifest",
                                     headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)})
            return self._check(resp, "get manifest")
        resp = self._retry("manifest fetch", step)
        raw = resp.content
        digest = sha256_digest(raw)
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatchError(f"manifest has digest {digest}, not {reference}", where=str(ref))
        header = resp.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != digest:
            raise DigestMismatchError(f"manifest bytes hash to {digest} but registry says {header}", where=str(ref))
        try:
            doc = json.loads(raw)
        except ValueError:
            raise NotWasmArtifactError("manifest is not JSON", where=str(ref)) from None
        if not isinstance(doc, dict):
            raise NotWasmArtifactError("manifest is not a JSON object", where=str(ref))
        media_type = doc.get("mediaType") or resp.headers.get("Content-Type", "").split(";")[0]
        return Manifest(ref, digest, str(media_type), raw, doc)

    def resolve(self) -> Resolved:
        """The image manifest the ref stands for: through an image index to Istio's choice."""
        top = self.get_manifest()
        if not is_index(top.doc, top.media_type):
            return Resolved(top)
        choice = select_manifest(top.doc, where=f"{top.ref} index")
        return Resolved(self.get_manifest(choice.descriptor["digest"]), top, choice)

    # -- downloads ---------------------------------------------------------------------------------
    def fetch_blob(self, desc: dict[str, Any]) -> bytes:
        """Stream a blob, hashing as it comes (resuming with Range after a drop); a mismatch is refused."""
        chunks: list[bytes] = []
        self._stream_blob(desc, chunks.append, chunks.clear)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def fetch_blob_into(self, desc: dict[str, Any], fh: BinaryIO) -> None:
        """:meth:`fetch_blob`, written to ``fh`` (seekable, empty) as it arrives instead of kept in memory."""
        out = WriteBehind(fh)
        self._stream_blob(desc, out.write, out.restart)

    def _stream_blob(self, desc: dict[str, Any], take: Callable[[bytes], object],
                     restart: Callable[[], object]) -> None:
        """Hand each chunk of the blob to ``take``; ``restart`` drops what was taken (a registry that
        ignores Range sends the blob again from its start). The digest is checked at the end."""
        digest, size = desc["digest"], desc["size"]
        step = f"download of blob {digest[:19]}"
        url = ep.blob_url(self.ref, self.plain_http, digest)
        got, h = 0, hashlib.sha256()
        bar = Bar(self.progress, f"blob {digest[7:19]}", size)
        failures = 0
        try:
            while True:
                try:
                    headers = {"Range": f"bytes={got}-"} if got else {}
                    resp = self.conn.request("GET", url, step=step, headers=headers, stream=True)
                    with resp:
                        if not (got and resp.status_code == 206):
                            self._check(resp, f"get blob {digest[:19]}")
                            if got:  # the registry ignored Range: from the start
                                restart()
                                got, h = 0, hashlib.sha256()
                                bar.set(0)
                        with self.conn.mapped(step):
                            for chunk in resp.iter_content(chunk_size=1 << 18):
                                if got + len(chunk) > size:
                                    raise DigestMismatchError(f"blob {digest} is longer than its {size} bytes",
                                                              where=str(self.ref),
                                                              hint="the registry content is corrupt; push again")
                                h.update(chunk)
                                take(chunk)
                                got += len(chunk)
                                bar.advance(len(chunk))
                    if got < size:
                        raise Transient("lost", step, detail=f"body ended at {got} of {size} bytes")
                    break
                except Transient as exc:
                    failures += 1
                    if failures >= self.attempts:
                        raise exc.error(self.ref.registry, self.attempts) from None
                    self._pause(failures)
        finally:
            bar.done()
        if "sha256:" + h.hexdigest() != digest:
            raise DigestMismatchError(f"blob {digest} arrived with digest sha256:{h.hexdigest()} "
                                      f"and size {got} (expected {size})", where=str(self.ref),
                                      hint="the registry content is corrupt; push again")

    def pull(self, *, runtime_config: bool = True) -> Pulled:
        """The module (and, unless ``runtime_config`` is False, the runtime config, which for asm/wasme costs
        one more request: the config blob)."""
        r = self.resolve()
        m = r.manifest
        detected = detect_format(m.doc, m.media_type, where=f"{m.ref} manifest")
        layer = self.fetch_blob(detected.wasm_layer)
        ex = extract(detected, layer, where=f"{m.ref} layer {detected.wasm_layer['digest'][:19]}")
        wanted = runtime_config and detected.format in ("asm", "wasme")
        config = self.fetch_blob(m.doc["config"]) if wanted else None
        rc = runtime_config_of(detected, m.doc, config, layer if detected.packed else None) if runtime_config \
            else None
        return Pulled(self.ref, m, detected, ex.module, rc, r.index, tuple(r.notes() + list(ex.notes)))

    def pull_to(self, path: Path, *, parents: bool = True, field: str | None = None) -> PulledFile:
        """Pull the module into ``path``, written atomically (see :func:`~meshfilter.util.fs.atomic_writer`).
        A raw Wasm layer (asm, wasme, cncf) streams from the registry into the file, never held in memory;
        a tar layer (docker, compat) is unpacked in memory first. Nothing is left at ``path`` on failure."""
        r = self.resolve()
        m = r.manifest
        detected = detect_format(m.doc, m.media_type, where=f"{m.ref} manifest")
        where = f"{m.ref} layer {detected.wasm_layer['digest'][:19]}"
        with atomic_writer(path, parents=parents, field=field) as fh:
            if detected.packed:
                ex = extract(detected, self.fetch_blob(detected.wasm_layer), where=where)
                fh.write(ex.module)
                notes, size = r.notes() + list(ex.notes), len(ex.module)
            else:
                self.fetch_blob_into(detected.wasm_layer, fh)
                fh.flush()
                extract(detected, os.pread(fh.fileno(), 4, 0), where=where)  # the \0asm magic, as pull() checks
                notes, size = r.notes() + detected.notes(), detected.wasm_layer["size"]
        return PulledFile(self.ref, m, detected, Path(path), size, r.index, tuple(notes))

    def inspect(self) -> dict[str, Any]:
        r = self.resolve()
        m = r.manifest
        detected = detect_format(m.doc, m.media_type, where=f"{m.ref} manifest")
        config = self.fetch_blob(m.doc["config"]) if detected.format in ("asm", "wasme") else None
        layer = self.fetch_blob(detected.wasm_layer) if detected.packed else None
        notes = r.notes()
        if layer is not None:
            notes += list(extract(detected, layer, where=f"{m.ref} layer").notes)
        else:
            notes += detected.notes()
        rc = runtime_config_of(detected, m.doc, config, layer)
        return describe(str(self.ref), m.digest, m.media_type, len(m.raw), m.doc, detected, rc,
                        index=r.index, choice=r.choice, notes=notes)

    # -- repository --------------------------------------------------------------------------------
    def tags(self, *, page_size: int = 1000) -> list[str]:
        """Every tag of the repository, in the registry's order (pages followed through ``Link``)."""
        url: str | None = ep.tags_url(self.ref, self.plain_http, n=page_size)
        out: list[str] = []
        while url:
            this = url

            def step(page: str = this) -> requests.Response:
                return self._check(self.conn.request("GET", page, step="list tags"), "list tags")
            resp = self._retry("tag listing", step)
            try:
                tags = resp.json().get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError("tag list is not JSON", where=self.ref.repo) from None
            out += [str(t) for t in tags]
            url = ep.next_link(resp.headers.get("Link"), this)
        return out

    # -- the store interface of meshfilter.oras.copy ----------------------------------------------
    def has_blob(self, desc: dict[str, Any]) -> bool:
        return self.blob_exists(desc["digest"])

    def get_blob(self, desc: dict[str, Any]) -> bytes:
        return self.fetch_blob(desc)

    def put_blob(self, desc: dict[str, Any], data: bytes, stats: PushStats) -> None:
        self.upload_blob(desc, data, stats)

    def fetch_manifest(self, reference: str | None) -> tuple[bytes, str]:
        m = self.get_manifest(reference)
        return m.raw, m.media_type

    def put_manifest(self, raw: bytes, media_type: str, reference: str) -> str:
        return self.push_manifest(raw, media_type, reference)


def describe(reference: str, digest: str, media_type: str, size: int, manifest: dict[str, Any],
             detected: Detected, rc: RuntimeConfig | None, *, index: Manifest | None = None,
             choice: IndexChoice | None = None, notes: list[str] | None = None) -> dict[str, Any]:
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
        "index": None if index is None or choice is None else {
            "digest": index.digest, "mediaType": index.media_type, "manifests": choice.count,
            "platform": choice.platform, "choice": choice.reason},
        "notes": list(notes or []),
    }


def resolve_digest(ref: str | Reference, *, plain_http: bool = False, insecure: bool = False,
                   ca_file: str | None = None, username: str | None = None, password: str | None = None,
                   docker_config: str | None = None, report: Callable[[str], None] | None = None) -> str:
    """The digest of the image manifest a tag stands for (checked against the manifest bytes). Through an
    image index, that is the manifest Istio's agent takes (linux/amd64, or the only one): the digest its
    ``sha256`` check compares with; ``report`` gets a note saying which."""
    client = RegistryClient(ref, plain_http=plain_http, insecure=insecure, ca_file=ca_file,
                            username=username, password=password, docker_config=docker_config)
    resolved = client.resolve()
    if report is not None:
        for note in resolved.notes():
            report(note)
    return resolved.manifest.digest


__all__ = ["RegistryClient", "Pulled", "Manifest", "PushStats", "Resolved", "describe", "resolve_digest",
           "AuthError", "MeshfilterError"]
